"""Curation steps. Each takes the records still in, returns those kept, and
returns every dropped one with the step's name and its reason."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from ..records import Example, to_dict


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
    note: str = ""  # what the stage prints after the counts, e.g. the drops by reason


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


def leak_check(examples: list[Example], allow: list[str]) -> StepResult:
    """Drop examples that still hold a secret: ingest redacts, this rescans what the examples became
    (a teacher's answer, chat data, a template) with the same detector. The dropped record is kept with
    the secret masked: excluded.jsonl must not become the leak."""
    from ..redact import find_secrets

    patterns = [re.compile(p) for p in allow]
    result = StepResult([])
    for e in examples:
        found: set[str] = set()

        def mask(text: str) -> str:
            findings = find_secrets(text, patterns)
            found.update(f.kind for f in findings)
            for f in sorted(findings, key=lambda f: -f.start):
                text = text[: f.start] + f"<SECRET:{f.kind}>" + text[f.end :]
            return text

        record = to_dict(e)
        if record["text"]:
            record["text"] = mask(record["text"])
        for key in ("messages", "prompt", "chosen", "rejected"):
            record[key] = [{**m, "content": mask(m["content"])} for m in record[key]] if record[key] else record[key]
        if found:
            result.dropped.append(Dropped("leak_check", f"holds a secret ({', '.join(sorted(found))})", record))
        else:
            result.kept.append(e)
    return result
