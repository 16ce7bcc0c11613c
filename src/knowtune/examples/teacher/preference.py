"""Preference pairs: the grounded answer is chosen, the teacher's answer without the passage rejected.

The closed-book answer is what a model says when it does not know the
organisation's sources: plausible, general, often wrong. DPO and ORPO then push
the tuned model from that towards the answer the sources support.
"""

from __future__ import annotations

import re

from ...records import Chunk, Document, Example, stable_id
from .client import Endpoint, ask_follow_up
from .prompts import render


async def closed_book_answer(ep: Endpoint, template: str, question: str, label: str) -> tuple[str | None, str]:
    """(answer, "") or (None, why there is none)."""
    reply, why = await ask_follow_up(ep, render(template, question=question), label, "closed-book answer")
    if reply is None:
        return None, why
    answer = reply.content.strip()
    return (answer, "") if answer else (None, "closed-book answer empty")


def same_answer(a: str, b: str) -> bool:
    # Case, spacing and punctuation differences are not a preference worth learning.
    def norm(text: str) -> str:
        return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())

    return norm(a) == norm(b)


def preference_example(chunk: Chunk, doc: Document, pair: dict[str, str], rejected: str, model: str) -> Example:
    return Example(
        id=stable_id("preference", "teacher", chunk.id, pair["question"]),
        kind="preference",
        document_id=chunk.document_id,
        provenance=[chunk.id],
        prompt=[{"role": "user", "content": pair["question"]}],
        chosen=[{"role": "assistant", "content": pair["answer"]}],
        rejected=[{"role": "assistant", "content": rejected}],
        metadata=teacher_metadata(chunk, doc, pair, model),
    )


def teacher_metadata(chunk: Chunk, doc: Document, pair: dict[str, str], model: str) -> dict:
    metadata = {"source": doc.source, "path": doc.path, "rule": "teacher", "quote": pair["quote"], "model": model}
    if chunk.metadata.get("diff_of"):
        metadata["follows"] = chunk.metadata["diff_of"]  # asked from one file's part of a change: split with it
    return metadata
