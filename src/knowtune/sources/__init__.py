"""Ingest: every configured source becomes documents, and every file left out a line in skipped.jsonl."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..config import GitSource, RepoSource
from ..progress import track
from ..records import Document, Skipped, write_jsonl
from . import git_history, repo
from .gitcmd import SourceError

__all__ = ["run_ingest", "fingerprint", "SourceError"]


def fingerprint(sources: list) -> str:
    """One string that changes exactly when the content ingest would read changes."""
    parts = []
    for src in sources:
        if isinstance(src, RepoSource):
            parts.append(f"repo:{repo.fingerprint(src)}")
        elif isinstance(src, GitSource):
            parts.append(f"git:{git_history.fingerprint(src)}")
    return "|".join(parts)


def run_ingest(sources: list, out: Path) -> dict:
    documents: list[Document] = []
    skipped: list[Skipped] = []
    for src in sources:
        if isinstance(src, RepoSource):
            paths, excluded = repo.candidates(src)
            skipped += excluded
            for item in track(repo.read(src, paths), f"reading {src.path.name}", total=len(paths)):
                (documents if isinstance(item, Document) else skipped).append(item)
        elif isinstance(src, GitSource):
            documents += track(git_history.read(src), f"reading history of {src.path.name}", total=src.last)
    ids = Counter(d.id for d in documents)
    if any(n > 1 for n in ids.values()):
        dup = next(i for i, n in ids.items() if n > 1)
        raise SourceError(f"sources: two sources produce the same document id {dup}; give them different folders")
    write_jsonl(out / "documents.jsonl", documents)
    write_jsonl(out / "skipped.jsonl", skipped)
    return {
        "documents": len(documents),
        "skipped": len(skipped),
        "by_kind": dict(Counter(d.kind for d in documents)),
        "by_source": dict(Counter(d.source for d in documents)),
        "skipped_by_reason": dict(Counter(_reason_class(s.reason) for s in skipped)),
        "characters": sum(len(d.text) for d in documents),
    }


def _reason_class(reason: str) -> str:
    return reason.split(" (")[0]
