"""A code repository as a snapshot of its files: one document per file."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from ..config import RepoSource
from ..records import Document, Skipped, stable_id
from .files import glob_filter, is_doc, language_of, list_files, read_text, skip_reason_by_name
from .gitcmd import SourceError, head_date


def label(src: RepoSource) -> str:
    return f"repo:{src.path.name}"


def candidates(src: RepoSource) -> tuple[list[str], list[Skipped]]:
    if not src.path.is_dir():
        raise SourceError(f"sources: repo path {src.path} is not a folder")
    kept, excluded = glob_filter(list_files(src.path), src.include, src.exclude)
    skipped = [Skipped(p, "excluded by include/exclude globs", label(src)) for p in excluded]
    return kept, skipped


def fingerprint(src: RepoSource) -> str:
    """Content hash of every candidate file (not modification times: a touched file is unchanged)."""
    h = hashlib.sha256(f"{head_date(src.path)}".encode())
    for rel in candidates(src)[0]:
        path = src.path / rel
        size = path.stat().st_size
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if size <= src.max_file_bytes else f"size:{size}"
        h.update(f"{rel}\x1f{digest}\n".encode())
    return h.hexdigest()[:16]


def read(src: RepoSource, paths: list[str]) -> Iterator[Document | Skipped]:
    date = head_date(src.path) or _newest_mtime(src.path, paths)
    source = label(src)
    for rel in paths:
        reason = skip_reason_by_name(rel)
        text = None
        if reason is None:
            text, reason = read_text(src.path / rel, src.max_file_bytes)
        if reason is not None:
            yield Skipped(rel, reason, source)
            continue
        doc = is_doc(rel)
        metadata = {"date": date, "programming_language": None if doc else language_of(rel)}
        if doc:
            metadata["title"] = title_of(text, rel)
            metadata["natural_language"] = None  # filled by language id (curate)
        yield Document(
            id=stable_id(source, rel), source=source, path=rel, kind="doc" if doc else "code",
            text=text, metadata=metadata,
        )


_MD_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
_RST_TITLE = re.compile(r"^(?P<title>[^\n]+)\n(?P<rule>[=\-~^\"'`#*+]{3,})\s*$", re.M)


def title_of(text: str, path: str) -> str:
    """The page's first heading, or its file name."""
    for pattern, group in ((_MD_HEADING, 1), (_RST_TITLE, "title")):
        m = pattern.search(text)
        if m:
            return m.group(group).strip()
    return Path(path).stem.replace("_", " ").replace("-", " ")


def _newest_mtime(root: Path, paths: list[str]) -> str:
    newest = max(((root / p).stat().st_mtime for p in paths), default=0)
    return datetime.fromtimestamp(newest, tz=timezone.utc).strftime("%Y-%m-%d")
