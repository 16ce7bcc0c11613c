"""What a teacher run would send and cost, before anything is sent."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ...config import TeacherConfig
from ...records import Chunk, Document
from .cache import load_replies, request_key
from .generate import qa_messages
from .prompts import load_prompt
from .structured import FORMS, pairs_schema, response_format


def dry_run(chunks: list[Chunk], docs: dict[str, Document], teacher: TeacherConfig, count_tokens: Callable[[str], int],
            cache_dir: Path | None = None) -> dict:
    """Requests, estimated prompt tokens, the completion tokens at most, and their price one by one and
    through the Batch API (`batch_discount` off); with `cache_dir`, how many requests the cache already
    answers. Judge, rewording and closed-book requests are not included: how many there are depends on
    how many pairs the teacher's replies keep. Nothing is sent, not even the structured-output probe, so
    a request counts as cached when the cache answers it on any output path."""
    template = load_prompt(teacher.prompt, "qa")
    cached = load_replies(Path(cache_dir) / "qa.jsonl") if cache_dir is not None else {}
    prompt_tokens = new_prompt_tokens = hits = 0
    for chunk in chunks:
        messages = qa_messages(template, chunk, docs[chunk.document_id], teacher.pairs_per_chunk)
        n = count_tokens(messages[0]["content"])
        prompt_tokens += n
        schema = pairs_schema(teacher.pairs_per_chunk)
        formats = [None] + ([response_format(f, "qa", schema) for f in FORMS] if teacher.structured else [])
        if any(request_key(teacher.model, messages, teacher.temperature, teacher.max_tokens, rf) in cached
               for rf in formats):
            hits += 1
        else:
            new_prompt_tokens += n
    to_send = len(chunks) - hits

    def price(prompt: int, completion: int, share: float = 1.0) -> float:
        cost = prompt * teacher.price_per_million_input + completion * teacher.price_per_million_output
        return round(cost * share / 1e6, 6)

    batch = 1.0 - teacher.batch_discount

    return {
        "requests": len(chunks),
        "cached": hits,  # already answered: not paid again
        "to_send": to_send,
        "prompt_tokens": prompt_tokens,
        "max_completion_tokens": len(chunks) * teacher.max_tokens,
        "max_cost": price(prompt_tokens, len(chunks) * teacher.max_tokens),  # every request, cache or not
        "max_cost_to_send": price(new_prompt_tokens, to_send * teacher.max_tokens),  # what this run could still spend
        # the same through the Batch API (teacher.batch), at its discount
        "max_cost_batch": price(prompt_tokens, len(chunks) * teacher.max_tokens, batch),
        "max_cost_to_send_batch": price(new_prompt_tokens, to_send * teacher.max_tokens, batch),
        "pays": "batch" if teacher.batch else "one by one",  # which of the two prices this run would pay
        "budget_tokens": teacher.budget_tokens,
    }
