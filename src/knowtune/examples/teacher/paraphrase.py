"""Rewordings of each kept question: one fact, asked several ways, answered the same.

A model trained on one wording of a fact answers that wording; asked another
way it often does not (Allen-Zhu and Li 2023; Ovadia et al. 2023, see
../phrasings.py). The model-free extractors vary their questions by template;
a teacher rewords them. Every example of one pair carries the same
metadata["fact"] and its metadata["phrasing"] (0 the original, 1.. the
rewordings), so the curate stage holds out whole facts, never one wording of a
fact whose others are trained.
"""

from __future__ import annotations

from typing import Any

from .client import Endpoint
from .parse import VAGUE, question_key, squash
from .prompts import render
from .structured import StructuredReply, questions_schema, structured_reply


async def ask_rewordings(ep: Endpoint, template: str, question: str, count: int, label: str) -> StructuredReply:
    """One request (cached) for `count` rewordings of `question`. Raises what structured_reply raises."""
    prompt = render(template, question=question, count=count)
    return await structured_reply(ep, [{"role": "user", "content": prompt}], questions_schema(count), "paraphrase",
                                 label)


def check_rewordings(got: StructuredReply, question: str, count: int,
                     taken: set[str]) -> tuple[list[str], list[dict[str, str]]]:
    """Up to `count` usable rewordings from the reply, and the ones dropped ({"question"?, "reason"}).
    `taken`: keys (parse.question_key) of the questions the chunk already has; kept rewordings join it.
    Checked one pair after another, in order, so a rerun from the cache keeps the same ones."""
    if got.value is None:
        return [], [{"reason": f"rewordings: {got.why}"}]
    items = _as_questions(got.value)
    if items is None:
        return [], [{"reason": "rewordings: not a list of questions"}]
    kept: list[str] = []
    dropped: list[dict[str, str]] = []
    own = question_key(question)
    for item in items:
        text = squash(item) if isinstance(item, str) else ""
        row = {"question": text} if text else {}
        reason = check_rewording(text, own, taken)
        if reason is None and len(kept) == count:
            reason = "more rewordings than asked for"
        if reason is not None:
            dropped.append({**row, "reason": f"rewording: {reason}"})
            continue
        kept.append(text)
        taken.add(question_key(text))
    return kept, dropped


def check_rewording(text: str, original_key: str, taken: set[str]) -> str | None:
    """Why a rewording is unusable, or None."""
    if not text:
        return "empty"
    vague = VAGUE.search(text)
    if vague:
        return f"says '{squash(vague.group(0)).lower()}'"
    key = question_key(text)
    if key == original_key:
        return "repeats the question"
    if key in taken:
        return "repeats another question"
    if not text.endswith("?"):
        return "not a question"
    return None


def _as_questions(value: Any) -> list | None:
    # The schema's {"question_1": "...", ...}; on the prompt path also a bare list or {"questions": [...]}.
    if isinstance(value, dict) and len(value) == 1 and isinstance(next(iter(value.values())), list):
        value = next(iter(value.values()))
    if isinstance(value, dict) and value and all(k.startswith("question_") for k in value):
        value = list(value.values())
    return value if isinstance(value, list) else None
