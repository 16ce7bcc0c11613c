"""Examples as the model trains on them: token ids and labels with the untrained tokens masked.

Curate counts tokens with this same function, so a length filter measures
exactly the sequence training will see.
"""

from __future__ import annotations

from typing import Any

from ..records import Example
from .chat_template import IGNORE, encode_chat, encode_text


def encode_example(tokenizer: Any, example: Example) -> dict[str, list[int]]:
    if example.kind == "raw":
        ids = encode_text(tokenizer, example.text or "")
        return {"input_ids": ids, "labels": list(ids)}
    if example.kind in ("instruction", "qa"):
        ids, mask = encode_chat(tokenizer, example.messages or [])
        return {"input_ids": ids, "labels": [t if m else IGNORE for t, m in zip(ids, mask)]}
    if example.kind == "preference":
        # Counted as prompt + chosen reply; preference trainers tokenise the pair themselves.
        ids, mask = encode_chat(tokenizer, (example.prompt or []) + (example.chosen or []))
        return {"input_ids": ids, "labels": [t if m else IGNORE for t, m in zip(ids, mask)]}
    raise ValueError(f"example {example.id}: unknown kind {example.kind!r}")


def question_of(example: Example) -> str | None:
    """The last user message of a chat example: what a held-out question is compared by."""
    messages = example.messages or example.prompt or []
    users = [m["content"] for m in messages if m["role"] == "user"]
    return users[-1] if users else None


def answer_of(example: Example) -> str | None:
    messages = example.messages or []
    replies = [m["content"] for m in messages if m["role"] == "assistant"]
    return replies[-1] if replies else None
