"""Curate: examples become a dataset split for training and evaluation, with a reason for every drop."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from ..build import load_tokenizer
from ..config import CurateConfig
from ..progress import track
from ..records import Example, read_jsonl, write_json, write_jsonl
from ..train.data import encode_example
from . import split as splitting
from .stats import dataset_stats, plot_lengths
from .steps import Dropped, exact_dedup, held_out_questions, length_filter

SPLITS = ("train", "val", "test", "knowledge")
SHAPES = {"raw": "raw.jsonl", "instruction": "chat.jsonl", "qa": "chat.jsonl", "preference": "preference.jsonl"}


def run_curate(cfg: CurateConfig, examples_dir: Path, tokenizer_dir: Path, out: Path) -> dict:
    tokenizer = load_tokenizer(tokenizer_dir)
    examples = list(read_jsonl(examples_dir / "examples.jsonl", Example))
    lengths = {e.id: len(encode_example(tokenizer, e)["input_ids"]) for e in track(examples, "measuring tokens")}
    before = _lengths_by_kind(examples, lengths)

    funnel, dropped = [], []

    def step(name: str, result) -> list[Example]:
        funnel.append({"step": name, "in": len(current), "out": len(result.kept)})
        dropped.extend(result.dropped)
        return result.kept

    current = examples
    if cfg.exact_dedup:
        current = step("exact_dedup", exact_dedup(current))
    current = step("length", length_filter(current, lengths, cfg.min_tokens, cfg.max_tokens))
    splitting.assign(current, cfg.val_share, cfg.test_share, cfg.knowledge_share, cfg.seed)
    current = step("decontaminate", held_out_questions(current))

    for e in current:
        e.metadata["n_tokens"] = lengths[e.id]
    write_dataset(current, out)
    write_jsonl(out / "excluded.jsonl", (d.row() for d in dropped))
    stats = dataset_stats(current, lengths)
    stats["funnel"] = funnel
    stats["dropped_by_step"] = _count_by(dropped)
    write_json(out / "stats.json", stats)
    plot_lengths(before, _lengths_by_kind(current, lengths), out / "plots" / "lengths.png", cfg.max_tokens)
    return {
        "examples": len(current),
        "dropped": len(dropped),
        "train": sum(e.split == "train" for e in current),
        "val": sum(e.split == "val" for e in current),
        "test": sum(e.split == "test" for e in current),
        "knowledge": sum(e.split == "knowledge" for e in current),
        "train_tokens": stats["train_tokens"],
    }


def write_dataset(examples: list[Example], out: Path) -> None:
    """One folder per split: every record with its ids, and one file per payload shape."""
    for name in SPLITS:
        records = [e for e in examples if e.split == name]
        write_jsonl(out / name / "examples.jsonl", records)
        by_shape = defaultdict(list)
        for e in records:
            by_shape[SHAPES[e.kind]].append(e.payload())
        for filename in sorted(set(SHAPES.values())):
            path = out / name / filename
            if by_shape.get(filename):
                write_jsonl(path, by_shape[filename])
            else:
                path.unlink(missing_ok=True)


def load_split(dataset: Path, name: str) -> list[Example]:
    path = dataset / name / "examples.jsonl"
    return list(read_jsonl(path, Example)) if path.is_file() else []


def _lengths_by_kind(examples: list[Example], lengths: dict[str, int]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for e in examples:
        out[e.kind].append(lengths[e.id])
    return dict(out)


def _count_by(dropped: list[Dropped]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for d in dropped:
        counts[d.step] += 1
    return dict(counts)
