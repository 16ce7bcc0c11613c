"""What a teacher run would send and cost, before anything is sent."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ...config import TeacherConfig
from ...records import Chunk, Document
from .cache import load_replies, request_key
from .generate import qa_messages
from .prompts import load_prompt


def dry_run(chunks: list[Chunk], docs: dict[str, Document], teacher: TeacherConfig, count_tokens: Callable[[str], int],
            cache_dir: Path | None = None) -> dict:
    """Requests, estimated prompt tokens, the completion tokens at most, and their price; with `cache_dir`,
    how many requests the cache already answers. Judge and closed-book requests are not included: how
    many there are depends on how many pairs the teacher's replies keep."""
    template = load_prompt(teacher.prompt, "qa")
    cached = load_replies(Path(cache_dir) / "qa.jsonl") if cache_dir is not None else {}
    prompt_tokens = new_prompt_tokens = hits = 0
    for chunk in chunks:
        messages = qa_messages(template, chunk, docs[chunk.document_id], teacher.pairs_per_chunk)
        n = count_tokens(messages[0]["content"])
        prompt_tokens += n
        if request_key(teacher.model, messages, teacher.temperature, teacher.max_tokens) in cached:
            hits += 1
        else:
            new_prompt_tokens += n
    to_send = len(chunks) - hits

    def price(prompt: int, completion: int) -> float:
        cost = prompt * teacher.price_per_million_input + completion * teacher.price_per_million_output
        return round(cost / 1e6, 6)

    return {
        "requests": len(chunks),
        "cached": hits,  # already answered: not paid again
        "to_send": to_send,
        "prompt_tokens": prompt_tokens,
        "max_completion_tokens": len(chunks) * teacher.max_tokens,
        "max_cost": price(prompt_tokens, len(chunks) * teacher.max_tokens),  # every request, cache or not
        "max_cost_to_send": price(new_prompt_tokens, to_send * teacher.max_tokens),  # what this run could still spend
        "budget_tokens": teacher.budget_tokens,
    }
