"""Retrieval for the evaluation's "with retrieval" answers: the top-k trained chunks for each question.

The index holds the chunks of the documents the model was trained on, embedded by the same offline MiniLM
curation uses (curate/embed.py): deterministic, so a rerun retrieves the same chunks. Held-out documents are
not in it, which is the point of asking the test set with retrieval too: there is nothing to find.

The passages go into the user's message the same way for the base and the tuned model. When the question
and its passages do not fit the context, the lowest-ranked passages are dropped (and counted).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..chat import prompt_ids
from ..records import Chunk, read_jsonl

DEFAULT_PROMPT = ("Answer the question using these passages from the project's files, docs and history.\n\n"
                  "{passages}\n\nQuestion: {question}")


@dataclass
class Retrieved:
    messages: list[dict]  # the conversation with the passages in its last user message
    chunk_ids: list[str]  # the passages that fit, best first
    dropped: int  # passages left out for the context


class Retriever:
    def __init__(self, chunks: list[Chunk], model: str = "all-MiniLM-L6-v2"):
        import faiss

        from ..curate.embed import embed

        self.chunks, self.model = chunks, model
        vectors = embed([c.text for c in chunks], model=model) if chunks else np.zeros((0, 384), np.float32)
        self.index = faiss.IndexFlatIP(vectors.shape[1])
        self.index.add(vectors)

    @classmethod
    def of_training(cls, chunks_dir: Path, train_documents: set[str], model: str = "all-MiniLM-L6-v2"):
        chunks = [c for c in read_jsonl(chunks_dir / "chunks.jsonl", Chunk) if c.document_id in train_documents]
        return cls(chunks, model)

    def search(self, questions: list[str], k: int) -> list[list[Chunk]]:
        from ..curate.embed import embed

        if not questions or not self.chunks or k == 0:
            return [[] for _ in questions]
        _, found = self.index.search(embed(questions, model=self.model), min(k, len(self.chunks)))
        return [[self.chunks[i] for i in row if i >= 0] for row in found]


def with_passages(messages: list[dict], passages: list[Chunk], template: str, tokenizer, context: int,
                  room: int) -> Retrieved:
    """The conversation with `passages` put before its question, as many as fit in `context` tokens with `room`
    left to answer in: the lowest-ranked go first."""
    from ..examples.teacher.prompts import render

    question = messages[-1]["content"]
    kept = list(passages)
    while True:
        # render, not str.format: passages of code are full of braces
        text = render(template, passages="\n\n".join(_passage(i, c) for i, c in enumerate(kept, 1)), question=question)
        asked = [*messages[:-1], {**messages[-1], "content": text}]
        if not kept or len(prompt_ids(tokenizer, asked)) + room <= context:
            return Retrieved(asked, [c.id for c in kept], len(passages) - len(kept))
        kept.pop()


def _passage(rank: int, chunk: Chunk) -> str:
    where = chunk.metadata.get("path", "")
    if chunk.metadata.get("of", 1) > 1:
        where += f" (lines {chunk.metadata.get('line_start')}-{chunk.metadata.get('line_end')})"
    return f"[{rank}] {where}\n{chunk.text.strip()}"
