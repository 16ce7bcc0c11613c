"""The records every stage passes on, and the atomic JSONL files that hold them.

A write goes to a temporary file in the same folder, is fsynced and renamed
over the target, so a process killed mid-write leaves the old file (or none),
never half of a new one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, TypeVar

DOCUMENT_KINDS = ("code", "doc", "change", "page")
EXAMPLE_KINDS = ("raw", "instruction", "qa", "preference")


@dataclass(slots=True)
class Document:
    id: str
    source: str  # the source's label, e.g. "repo:/path/to/repo"
    path: str  # file path, or commit id for a change
    kind: str  # one of DOCUMENT_KINDS
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Chunk:
    id: str
    document_id: str
    text: str
    n_tokens: int
    span: tuple[int, int]  # character offsets [start, end) in the document's text
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Example:
    id: str
    kind: str  # one of EXAMPLE_KINDS
    document_id: str
    provenance: list[str] = field(default_factory=list)  # chunk ids
    split: str | None = None
    text: str | None = None  # raw
    messages: list[dict[str, str]] | None = None  # instruction, qa
    prompt: list[dict[str, str]] | None = None  # preference
    chosen: list[dict[str, str]] | None = None
    rejected: list[dict[str, str]] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        """The example in the shape TRL, Axolotl and LLaMA-Factory load as is."""
        if self.kind == "raw":
            return {"text": self.text}
        if self.kind == "preference":
            return {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}
        return {"messages": self.messages}


@dataclass(slots=True)
class Skipped:
    """Something a stage left out, and why."""

    path: str
    reason: str
    source: str = ""


def stable_id(*parts: str, length: int = 16) -> str:
    h = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return h[:length]


def to_dict(record: Any) -> dict[str, Any]:
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}


T = TypeVar("T")


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    if cls is Chunk and isinstance(data.get("span"), list):
        data = {**data, "span": tuple(data["span"])}
    return cls(**data)


# --- atomic files ----------------------------------------------------------


def atomic_write(path: Path, data: bytes | str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _atomic(path) as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)


def write_jsonl(path: Path, records: Iterable[Any]) -> int:
    """Write records (dataclasses or dicts) one JSON object per line; returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with _atomic(path) as fh:
        for record in records:
            obj = record if isinstance(record, dict) else to_dict(record)
            fh.write(json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n")
            n += 1
    return n


def read_jsonl(path: Path, cls: type[T] | None = None) -> Iterator[T] | Iterator[dict]:
    path = Path(path)
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
            yield from_dict(cls, obj) if cls else obj


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


class _atomic:
    """Context manager: a binary file handle whose content replaces `path` on success only."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self.fh = os.fdopen(fd, "wb")
        return self.fh

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.fh.flush()
                os.fsync(self.fh.fileno())
            self.fh.close()
            if exc_type is None:
                os.replace(self.tmp, self.path)
                _fsync_dir(self.path.parent)
        finally:
            if os.path.exists(self.tmp):
                os.unlink(self.tmp)
        return False


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
