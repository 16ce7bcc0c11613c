"""Decontamination: no training example may repeat what evaluation asks or expects.

A training question or answer that shares an n-gram (13 words by default, as
in the GPT-3 paper's contamination study) with a held-out question or answer
(val, test, knowledge) or with a benchmark file is dropped. Raw text is not
compared: a trained document's text is the knowledge its held-out questions
ask about, and holding it out too would leave nothing to learn.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..records import Example, to_dict
from .split import QUESTION_KINDS
from .steps import Dropped, StepResult

_WORD = re.compile(r"\w+")


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    if len(words) < n:
        return {tuple(words)} if len(words) >= max(3, n // 2) else set()  # a short question still counts whole
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def texts_of(example: Example) -> list[str]:
    """What an example asks and answers: every message of a chat, prompt and chosen of a preference pair."""
    messages = (example.messages or []) + (example.prompt or []) + (example.chosen or [])
    return [m["content"] for m in messages if m["role"] in ("user", "assistant")]


def benchmark_texts(paths: list[Path]) -> list[tuple[str, str]]:
    """(where, text) of every string field in the benchmark JSONL files."""
    out = []
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"curate.decontaminate.benchmarks: {path} does not exist")
        for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                out += [(f"{Path(path).name}:{lineno}", s) for s in _strings(json.loads(line))]
    return out


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def decontaminate(examples: list[Example], n: int, benchmarks: list[tuple[str, str]] = ()) -> StepResult:
    held: dict[tuple[str, ...], str] = {}
    for e in examples:
        if e.split != "train" and e.kind in QUESTION_KINDS:
            for text in texts_of(e):
                for g in ngrams(text, n):
                    held.setdefault(g, e.id)
    for where, text in benchmarks:
        for g in ngrams(text, n):
            held.setdefault(g, f"benchmark {where}")
    result = StepResult([])
    for e in examples:
        twin = None
        if e.split == "train" and e.kind in QUESTION_KINDS:
            twin = next((held[g] for text in texts_of(e) for g in ngrams(text, n) if g in held), None)
        if twin is None:
            result.kept.append(e)
        else:
            what = "a benchmark" if twin.startswith("benchmark ") else "a held-out example"
            result.dropped.append(Dropped("decontaminate", f"shares a {n}-word sequence with {what}", to_dict(e),
                                          twin))
    return result
