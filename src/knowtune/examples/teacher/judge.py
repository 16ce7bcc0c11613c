"""A second model's verdict on each pair: kept only when rated both grounded and useful.

The teacher's own check (the quote occurs in the chunk) shows the answer came
from somewhere in the passage, not that the answer says only what the quote
supports, nor that the question is worth asking. That needs reading, so a
judge reads it.
"""

from __future__ import annotations

from typing import Any

from .client import BudgetReached, Endpoint, RequestFailed
from .parse import NotJSON, load_json
from .prompts import render
from .structured import VERDICT_SCHEMA, structured_reply


def parse_verdict(reply: str) -> tuple[bool, bool, str] | None:
    """(grounded, useful, reason) from a judge's reply, or None when it is not that shape."""
    try:
        value = load_json(reply)
    except NotJSON:
        return None
    return verdict_of(value)


def verdict_of(value: Any) -> tuple[bool, bool, str] | None:
    """parse_verdict for a reply already read as JSON."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, dict):
        return None
    grounded, useful = value.get("grounded"), value.get("useful")
    if not isinstance(grounded, bool) or not isinstance(useful, bool):
        return None  # "yes", 1 or a missing key: guessing would keep pairs nobody approved
    reason = value.get("reason")
    return grounded, useful, reason.strip() if isinstance(reason, str) else ""


async def judge_pair(ep: Endpoint, template: str, pair: dict[str, str], passage: str, label: str) -> tuple[bool, str]:
    """(keep, reason): the judge's own reason when it answered, else why it could not."""
    prompt = render(template, question=pair["question"], answer=pair["answer"], passage=passage)
    try:
        got = await structured_reply(ep, [{"role": "user", "content": prompt}], VERDICT_SCHEMA, "judge", label)
    except BudgetReached:
        return False, "budget reached before the judge"
    except RequestFailed as err:
        return False, f"judge request failed: {err}"
    verdict = verdict_of(got.value) if got.value is not None else None
    if verdict is None:
        return False, "judge reply not understood"
    grounded, useful, reason = verdict
    if grounded and useful:
        return True, reason
    failed = ", ".join(name for name, ok in (("not grounded", grounded), ("not useful", useful)) if not ok)
    return False, f"judge: {failed}" + (f": {reason}" if reason else "")
