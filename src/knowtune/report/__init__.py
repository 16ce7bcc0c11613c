"""One report per run, built from per-stage sections (as nanochat does), as Markdown and as one HTML file;
and a page comparing two runs.

Sections read only what the stages wrote (manifests, stats, results, generations), so the report can be
rebuilt at any time and never disagrees with the artifacts. Each section module returns a list of blocks
(blocks.py); render.py turns the same blocks into both files.
"""

from __future__ import annotations

from pathlib import Path

from ..records import atomic_write
from ..runs import RunDir
from .blocks import Section
from .compare import write_comparison
from .evaluation import eval_section
from .render import to_html, to_markdown
from .stages import build_section, curate_section, export_section, ingest_section, sweep_section, train_section
from .summary import summary_section

__all__ = ["write_comparison", "write_report"]


def write_report(run: RunDir, name: str, shown_generations: int = 10) -> tuple[Path, Path]:
    sections: list[Section] = [
        ("Summary", summary_section(run)),
        ("Ingest", ingest_section(run)),
        ("Build", build_section(run)),
        ("Curate", curate_section(run)),
        ("Train", train_section(run)),
        ("Evaluate", eval_section(run, shown_generations)),
        ("Sweep", sweep_section(run)),
        ("Export", export_section(run)),
    ]
    sections = [(title, blocks) for title, blocks in sections if blocks]
    md_path, html_path = run.root / "report.md", run.root / "report.html"
    atomic_write(md_path, to_markdown(f"knowtune report: {name}", sections, run.root))
    atomic_write(html_path, to_html(f"knowtune report: {name}", sections))
    return md_path, html_path
