"""Reading a teacher's reply: strict JSON first, then only the repairs every model needs, then validation.

Models wrap JSON in Markdown fences, chat before and after it, or wrap the array
in an object; those are repaired. Anything cleverer (fixing quotes, closing
brackets) would guess at what the model meant, so it is not attempted: the
reply is dropped with a reason and the prompt is what gets fixed. Every pair
thrown away keeps a one-line reason, so fewer examples than expected can be
explained.
"""

from __future__ import annotations

import json
import re
from typing import Any

FIELDS = ("question", "answer", "quote")
FENCE = re.compile(r"```[\w+-]*[ \t]*\n?(.*?)```", re.DOTALL)
# A question that points at "the passage" means nothing once the passage is gone,
# which is how the model is asked at inference (see the FAQ-bot recipe's lesson).
VAGUE = re.compile(
    r"\b(?:the|this|that|above|given|provided|following)\s+(?:(?:above|given|provided|following)\s+)?"
    r"(?:passage|text|document|excerpt|snippet)s?\b|\bthis\s+code\b",
    re.IGNORECASE,
)


class NotJSON(ValueError):
    pass


def load_json(reply: str) -> Any:
    """The JSON value in a reply, trying in turn: the reply as is, inside a code fence, the outermost
    array, the outermost object. Raises NotJSON when none parses."""
    text = reply.strip()
    fenced = FENCE.search(text)
    body = fenced.group(1).strip() if fenced else text
    candidates = [text, body]
    for opening, closing in ("[]", "{}"):
        start, end = body.find(opening), body.rfind(closing)
        if 0 <= start < end:
            candidates.append(body[start : end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    raise NotJSON("not JSON after repairs")


def as_list(value: Any) -> list | None:
    """A list of pairs from the shapes models use: [...], {"pairs": [...]}, or one pair on its own; and
    the structured-output schema's {"pair_1": {...}, "pair_2": {...}} (structured.pairs_schema)."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        if "question" in value:
            return [value]
        if len(value) == 1 and isinstance(next(iter(value.values())), list):
            return next(iter(value.values()))
        if value and all(isinstance(v, dict) for v in value.values()):
            return list(value.values())
    return None


def parse_pairs(reply: str, passage: str) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Pairs kept ({"question","answer","quote"}) and pairs dropped ({"question"?, "reason"})."""
    try:
        value = load_json(reply)
    except NotJSON as err:
        return [], [{"reason": str(err)}]
    return check_pairs(value, passage)


def check_pairs(value: Any, passage: str) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """parse_pairs for a reply already read as JSON (a schema's {"pairs": [...]} or any shape as_list takes)."""
    items = as_list(value)
    if items is None:
        return [], [{"reason": "not a JSON array of pairs"}]
    if not items:
        return [], [{"reason": "no pairs in the reply"}]
    kept: list[dict[str, str]] = []
    dropped: list[dict[str, str]] = []
    seen: set[str] = set()
    flat_passage = squash(passage)
    for item in items:
        if not isinstance(item, dict):
            dropped.append({"reason": "pair is not a JSON object"})
            continue
        question = item.get("question")
        row = {"question": question.strip()} if isinstance(question, str) and question.strip() else {}
        reason = check(item, flat_passage)
        if reason is None:
            key = question_key(question)
            if key in seen:
                reason = "duplicate question"
            seen.add(key)
        if reason:
            dropped.append({**row, "reason": reason})
        else:
            kept.append({f: item[f].strip() for f in FIELDS})
    return kept, dropped


def check(item: dict, flat_passage: str) -> str | None:
    """Why a pair is unusable, or None."""
    for field in FIELDS:
        value = item.get(field)
        if not isinstance(value, str) or not value.strip():
            return f"missing {field}"
    vague = VAGUE.search(item["question"])
    if vague:
        return f"question says '{squash(vague.group(0)).lower()}'"
    # Whitespace is normalised because models re-wrap lines and indentation;
    # case is kept because a quote that changes case was not copied.
    if squash(item["quote"]) not in flat_passage:
        return "quote not in the chunk"
    return None


def squash(text: str) -> str:
    return " ".join(text.split())


def question_key(question: str) -> str:
    return squash(question).casefold().rstrip("?.! ")
