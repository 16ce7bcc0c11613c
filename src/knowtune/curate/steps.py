"""Curation steps. Each takes the records still in, returns those kept, and
returns every dropped one with the step's name and its reason."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from ..records import Example, to_dict
from ..train.data import question_of


@dataclass
class Dropped:
    step: str
    reason: str
    record: dict[str, Any]
    duplicate_of: str | None = None

    def row(self) -> dict[str, Any]:
        row = {"id": self.record["id"], "step": self.step, "reason": self.reason}
        if self.duplicate_of:
            row["duplicate_of"] = self.duplicate_of
        return {**row, "record": self.record}


@dataclass
class StepResult:
    kept: list[Example]
    dropped: list[Dropped] = field(default_factory=list)


def normalised(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def content_key(example: Example) -> str:
    if example.kind == "raw":
        text = example.text or ""
    else:
        text = "\x1e".join(f"{m['role']}:{m['content']}" for m in example.messages or example.prompt or [])
        text += "\x1e" + "\x1e".join(m["content"] for m in (example.chosen or []) + (example.rejected or []))
    return hashlib.sha256(normalised(text).encode()).hexdigest()


def exact_dedup(examples: list[Example]) -> StepResult:
    """Drop repeats of the same normalised content within each kind; the first stays.

    Within each kind only: a raw chunk and the instruction that quotes the same
    file share text on purpose (../shared/seeds/000 mixes both in one run).
    """
    first: dict[tuple[str, str], str] = {}
    result = StepResult([])
    for e in examples:
        key = (e.kind, content_key(e))
        if key in first:
            result.dropped.append(Dropped("exact_dedup", "same text as another example", to_dict(e), first[key]))
        else:
            first[key] = e.id
            result.kept.append(e)
    return result


def length_filter(examples: list[Example], lengths: dict[str, int], min_tokens: int, max_tokens: int) -> StepResult:
    result = StepResult([])
    for e in examples:
        n = lengths[e.id]
        if n < min_tokens:
            result.dropped.append(Dropped("length", f"{n} tokens < min_tokens {min_tokens}", to_dict(e)))
        elif n > max_tokens:
            result.dropped.append(Dropped("length", f"{n} tokens > max_tokens {max_tokens}", to_dict(e)))
        else:
            result.kept.append(e)
    return result


def held_out_questions(examples: list[Example]) -> StepResult:
    """Drop training examples that ask a question held out for evaluation (word for word).

    Raw text stays: it is the knowledge the held-out questions ask about.
    """
    held = {}
    for e in examples:
        q = question_of(e)
        if e.split != "train" and q:
            held.setdefault(normalised(q), e.id)
    result = StepResult([])
    for e in examples:
        q = question_of(e)
        twin = held.get(normalised(q)) if q and e.split == "train" else None
        if twin:
            result.dropped.append(Dropped("decontaminate", "asks a held-out question", to_dict(e), twin))
        else:
            result.kept.append(e)
    return result
