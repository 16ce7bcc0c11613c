"""Where retrieval plugs into the server: `retrieve(question) -> list[str]` gives passages, put in the last
user message ahead of the question (not in a system message of their own, which some chat templates refuse
anywhere but first).

The retriever over a run's dataset is being built elsewhere; until it lands, `knowtune serve --rag` says so
instead of serving without the context it promised.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

Retrieve = Callable[[str], list[str]]
UNAVAILABLE = "retrieval needs the run's dataset; not available yet"


class RetrievalUnavailable(RuntimeError):
    pass


def load_retriever(run_dir: Path) -> Retrieve:
    raise RetrievalUnavailable(UNAVAILABLE)


def with_passages(messages: list[dict[str, str]], passages: list[str]) -> list[dict[str, str]]:
    """The conversation with the passages ahead of the last message's question."""
    if not passages:
        return messages
    context = "\n\n".join(f"[{i + 1}] {p}" for i, p in enumerate(passages))
    last = messages[-1]
    return messages[:-1] + [{**last, "content": f"Context:\n{context}\n\nQuestion: {last['content']}"}]
