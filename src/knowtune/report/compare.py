"""Two runs side by side (`knowtune report RUN_A RUN_B`): the settings that differ, the summary numbers of
both with their difference, and each question set's four-way table for both runs next to each other."""

from __future__ import annotations

from pathlib import Path

from ..records import atomic_write
from ..runs import RunDir
from .artifacts import results
from .blocks import Block, Bullets, Section, Table, label, metric_label, metric_of, num, signed, ways_of
from .evaluation import QUESTION_SETS
from .render import to_html, to_markdown
from .summary import headline

SET_ROWS = (("questions", "questions"), ("exact_match", "exact match"), ("f1", "F1"), ("rouge_l", "ROUGE-L"),
            ("judge_accuracy", "judge accuracy"))


def run_names(a: Path, b: Path) -> tuple[str, str]:
    if a.name != b.name:
        return a.name, b.name
    if a.parent.name != b.parent.name:
        return f"{a.parent.name}/{a.name}", f"{b.parent.name}/{b.name}"
    return "A", "B"


def write_comparison(run_a: RunDir, run_b: RunDir, out: Path) -> tuple[Path, Path]:
    names = run_names(run_a.root.resolve(), run_b.root.resolve())
    sections: list[Section] = [
        ("Runs", runs_section(run_a, run_b, names)),
        ("Summary", summary_section(run_a, run_b, names)),
        ("Questions, four ways", sets_section(run_a, run_b, names)),
    ]
    sections = [(title, blocks) for title, blocks in sections if blocks]
    out.mkdir(parents=True, exist_ok=True)
    title = f"knowtune comparison: {names[0]} vs {names[1]}"
    md_path, html_path = out / "compare.md", out / "compare.html"
    atomic_write(md_path, to_markdown(title, sections, out))
    atomic_write(html_path, to_html(title, sections))
    return md_path, html_path


def _flat(node, prefix: str = "") -> dict[str, object]:
    if isinstance(node, dict):
        out: dict[str, object] = {}
        for k, v in node.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def _config(run: RunDir) -> dict[str, object]:
    import yaml

    if not run.config_file.is_file():
        return {}
    return _flat(yaml.safe_load(run.config_file.read_text(encoding="utf-8")) or {})


def runs_section(run_a: RunDir, run_b: RunDir, names: tuple[str, str]) -> list[Block]:
    blocks: list[Block] = [Table(["run", "folder"], [[names[0], str(run_a.root)], [names[1], str(run_b.root)]])]
    a, b = _config(run_a), _config(run_b)
    differ = [k for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k) and k != "name"]
    if differ:
        blocks.append("Settings that differ (config.yaml of each run):")
        blocks.append(Table(["setting", *names], [[k, _show(a.get(k)), _show(b.get(k))] for k in differ]))
    elif a and b:
        blocks.append("The two runs have the same settings.")
    return blocks


def _show(value) -> str:
    return "(not set)" if value is None else str(value)


def _difference(a, b) -> str:
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    return f"{b - a:+.4g}" if numbers else ""


def summary_section(run_a: RunDir, run_b: RunDir, names: tuple[str, str]) -> list[Block]:
    a = {(what, way): v for what, way, v in headline(run_a)}
    b = {(what, way): v for what, way, v in headline(run_b)}
    rows = [[what + (f", {label(way)}" if way else ""), num(a.get((what, way))), num(b.get((what, way))),
             _difference(a.get((what, way)), b.get((what, way)))] for what, way in merged_order(list(a), list(b))]
    return [Table(["what", *names, f"difference ({names[1]} − {names[0]})"], rows)]


def merged_order(a: list, b: list) -> list:
    """a's keys in a's order, each key only b has placed right after the key b has before it."""
    out = list(a)
    for i, key in enumerate(b):
        if key not in out:
            out.insert(out.index(b[i - 1]) + 1 if i else 0, key)
    return out


def sets_section(run_a: RunDir, run_b: RunDir, names: tuple[str, str]) -> list[Block]:
    res = (results(run_a) or {}, results(run_b) or {})
    blocks: list[Block] = []
    for name in QUESTION_SETS:
        ways = (ways_of(res[0].get(name, {})), ways_of(res[1].get(name, {})))
        if not (ways[0] or ways[1]):
            continue
        header = [name] + [f"{run}: {label(w)}" for run, ws in zip(names, ways) for w in ws]
        rows = []
        for key, shown in SET_ROWS:
            cells = [res[i][name][w].get(key) for i in (0, 1) for w in ways[i]]
            if any(c is not None for c in cells):
                rows.append([shown, *cells])
        blocks += [f"**{name}**", Table(header, rows)]
        metric = metric_of(name)
        said = []
        for w in (w for w in ways[0] if w in ways[1]):
            x, y = res[0][name][w][metric], res[1][name][w][metric]
            said.append(f"{label(w)} {metric_label(metric)}: {x} in {names[0]}, {y} in {names[1]} ({signed(y - x)})")
        for run, r in zip(names, res):
            comparison = r.get(name, {}).get("comparison")
            if comparison:
                winner = comparison.get("winner")
                said.append(f"verdict in {run}: {label(winner) + ' is best' if winner else 'no clear winner'} "
                            f"({comparison['questions']} questions)")
        if said:
            blocks.append(Bullets(said))
    return blocks
