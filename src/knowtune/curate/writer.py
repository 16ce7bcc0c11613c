"""The curated dataset on disk: per split, one JSONL file per payload shape (as TRL, Axolotl and
LLaMA-Factory load them), the same as Hugging Face datasets, and a dataset card."""

from __future__ import annotations

import shutil
from collections import Counter, defaultdict
from pathlib import Path

from ..records import Example, atomic_write, read_jsonl, write_jsonl

SPLITS = ("train", "val", "test", "knowledge", "paraphrase")
SHAPES = {"raw": "raw", "instruction": "chat", "qa": "chat", "preference": "preference"}


def write_dataset(examples: list[Example], out: Path) -> dict[str, dict[str, int]]:
    """Write every split; returns {split: {shape: count}}."""
    counts: dict[str, dict[str, int]] = {}
    for name in SPLITS:
        records = [e for e in examples if e.split == name]
        write_jsonl(out / name / "examples.jsonl", records)
        by_shape = defaultdict(list)
        for e in records:
            by_shape[SHAPES[e.kind]].append(e.payload())
        for shape in sorted(set(SHAPES.values())):
            path = out / name / f"{shape}.jsonl"
            if by_shape.get(shape):
                write_jsonl(path, by_shape[shape])
            else:
                path.unlink(missing_ok=True)
        counts[name] = {shape: len(rows) for shape, rows in sorted(by_shape.items())}
    write_hf(examples, out / "hf")
    return counts


def write_hf(examples: list[Example], folder: Path) -> None:
    """One DatasetDict per payload shape, its splits as above: `datasets.load_from_disk(folder / "chat")`."""
    from datasets import Dataset, DatasetDict

    shutil.rmtree(folder, ignore_errors=True)
    for shape in sorted(set(SHAPES.values())):
        splits = {}
        for name in SPLITS:
            rows = [{"id": e.id, **e.payload()} for e in examples if e.split == name and SHAPES[e.kind] == shape]
            if rows:
                splits[name] = Dataset.from_list(rows)
        if splits:
            DatasetDict(splits).save_to_disk(str(folder / shape))


def load_split(dataset: Path, name: str) -> list[Example]:
    path = dataset / name / "examples.jsonl"
    return list(read_jsonl(path, Example)) if path.is_file() else []


def write_card(out: Path, examples: list[Example], funnel: list[dict], counts: dict, settings: dict) -> None:
    """A dataset card in the Hugging Face format: what went in, what was done to it, what came out."""
    sources = Counter(e.metadata.get("source", "?") for e in examples)
    lines = [
        "---",
        "configs:",
        *[line for shape in ("chat", "raw", "preference") if any(shape in c for c in counts.values())
          for line in (f"- config_name: {shape}", "  data_files:",
                       *[f"  - split: {s}\n    path: {s}/{shape}.jsonl" for s in SPLITS
                         if counts.get(s, {}).get(shape)])],
        "---",
        "",
        "# Dataset card",
        "",
        "Built by knowtune from an organisation's own sources; secrets and personal data were redacted at ingest.",
        "",
        "## Sources",
        "",
        "| source | examples |",
        "|---|---|",
        *[f"| {s} | {n} |" for s, n in sorted(sources.items())],
        "",
        "## Curation",
        "",
        "| step | in | out |",
        "|---|---|---|",
        *[f"| {f['step']} | {f['in']} | {f['out']} |" for f in funnel],
        "",
        "Every dropped record is in `excluded.jsonl` with its step and reason (and, for a duplicate, the id it "
        "duplicates).",
        "",
        "## Splits",
        "",
        "`val` and `test` hold out whole source documents (does the model generalise to text it never saw?); "
        "`knowledge` holds out questions about documents that are trained (did it learn what they say?). "
        f"Shares: val {settings['val_share']}, test {settings['test_share']}, knowledge {settings['knowledge_share']}"
        f", seed {settings['seed']}.",
        "",
        "| split | " + " | ".join(sorted(set(SHAPES.values()))) + " |",
        "|---|" + "---|" * len(set(SHAPES.values())),
        *[f"| {s} | " + " | ".join(str(counts.get(s, {}).get(shape, 0)) for shape in sorted(set(SHAPES.values())))
          + " |" for s in SPLITS],
        "",
    ]
    atomic_write(out / "README.md", "\n".join(lines))
