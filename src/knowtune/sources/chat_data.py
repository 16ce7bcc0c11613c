"""Existing chat data (messages, alpaca or sharegpt records) read as instruction examples directly.

Used for data the organisation already has, and for public instruction sets
mixed in against forgetting. A record that fits no format is skipped with its
file, line and reason; reading never stops at one bad line.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..config import HFDatasetSource, JsonlSource
from ..records import Example, Skipped, stable_id
from .gitcmd import SourceError

ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


class RecordError(ValueError):
    """A record that is not usable chat data; the message is the skip reason."""


def label(src: JsonlSource | HFDatasetSource) -> str:
    if isinstance(src, JsonlSource):
        return f"jsonl:{src.path.name}"
    return f"hf_dataset:{Path(src.path).name if Path(src.path).exists() else src.path}:{src.split}"


def fingerprint(src: JsonlSource | HFDatasetSource) -> str:
    h = hashlib.sha256(f"{src.format}:{src.limit}:{getattr(src, 'split', '')}".encode())
    if isinstance(src, HFDatasetSource) and not Path(src.path).exists():
        # A hub id: what the hub serves cannot be hashed offline; the id and settings stand for it.
        h.update(src.path.encode())
        return h.hexdigest()[:16]
    root = Path(src.path)
    for rel, path in _files(root, (".jsonl",) if isinstance(src, JsonlSource) else None):
        h.update(f"{rel}\x1f{_file_hash(path)}\n".encode())
    return h.hexdigest()[:16]


def read(src: JsonlSource | HFDatasetSource) -> Iterator[Example | Skipped]:
    source = label(src)
    records = _jsonl_records(src.path) if isinstance(src, JsonlSource) else _dataset_records(src, source)
    kept = 0
    for index, (where, record) in enumerate(records):
        if src.limit is not None and kept >= src.limit:
            return
        if isinstance(record, RecordError):
            yield Skipped(where, str(record), source)
            continue
        try:
            messages, fmt = to_messages(record, src.format)
        except RecordError as err:
            yield Skipped(where, str(err), source)
            continue
        kept += 1
        ex_id = stable_id(source, str(index), json.dumps(messages, ensure_ascii=False))
        yield Example(id=ex_id, kind="instruction", document_id=ex_id, messages=messages,
                      metadata={"source": source, "origin": "external", "format": fmt})


def to_messages(record: Any, fmt: str = "auto") -> tuple[list[dict[str, str]], str]:
    """(messages in the OpenAI chat format, the format the record was in); RecordError when it fits none."""
    if not isinstance(record, dict):
        raise RecordError("not a JSON object")
    if fmt == "auto":
        fmt = detect(record)
        if fmt is None:
            raise RecordError("fits no chat format (messages, alpaca, sharegpt)")
    if fmt == "messages":
        messages = _from_messages(record)
    elif fmt == "alpaca":
        messages = _from_alpaca(record)
    else:
        messages = _from_sharegpt(record)
    if not any(m["role"] == "assistant" for m in messages) or messages[-1]["role"] != "assistant":
        raise RecordError("no assistant reply")
    if not any(m["role"] == "user" for m in messages):
        raise RecordError("no user message")
    return messages, fmt


def detect(record: dict) -> str | None:
    # Values are checked, not only keys: a Hugging Face dataset mixing formats has every column, None where absent.
    if isinstance(record.get("messages"), list):
        return "messages"
    if isinstance(record.get("conversations"), list):
        return "sharegpt"
    if isinstance(record.get("instruction"), str):
        return "alpaca"
    return None


def _from_messages(record: dict) -> list[dict[str, str]]:
    turns = record.get("messages")
    if not isinstance(turns, list):
        raise RecordError("not a messages record (no 'messages' list)")
    messages = []
    for turn in turns:
        if not isinstance(turn, dict) or "role" not in turn:
            raise RecordError("a message without a role")
        if turn["role"] not in ROLES:
            raise RecordError(f"unknown role {turn['role']!r}")
        messages.append({"role": turn["role"], "content": _content(turn.get("content"))})
    return _nonempty(messages)


def _from_alpaca(record: dict) -> list[dict[str, str]]:
    instruction, extra, output = record.get("instruction"), record.get("input"), record.get("output")
    if not isinstance(instruction, str) or not instruction.strip():
        raise RecordError("not an alpaca record (no 'instruction')")
    if not isinstance(output, str) or not output.strip():
        raise RecordError("no assistant reply")
    user = instruction.strip() + (f"\n\n{extra.strip()}" if isinstance(extra, str) and extra.strip() else "")
    system = record.get("system")
    messages = [{"role": "system", "content": system}] if isinstance(system, str) and system.strip() else []
    return messages + [{"role": "user", "content": user}, {"role": "assistant", "content": output}]


def _from_sharegpt(record: dict) -> list[dict[str, str]]:
    turns = record.get("conversations")
    if not isinstance(turns, list):
        raise RecordError("not a sharegpt record (no 'conversations' list)")
    messages = []
    for turn in turns:
        if not isinstance(turn, dict) or "from" not in turn:
            raise RecordError("a turn without 'from'")
        role = SHAREGPT_ROLES.get(turn["from"]) if isinstance(turn["from"], str) else None
        if role is None:
            raise RecordError(f"unknown role {turn['from']!r}")
        messages.append({"role": role, "content": _content(turn.get("value"))})
    return _nonempty(messages)


def _content(content: Any) -> str:
    if isinstance(content, str):
        return content
    # OpenAI's list-of-parts form: text parts are joined; anything else (images, audio) is not text to train on.
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(str(p.get("text", "")) for p in content)
    raise RecordError("a message whose content is not text")


def _nonempty(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    if not messages:
        raise RecordError("no messages")
    if any(m["role"] == "assistant" and not m["content"].strip() for m in messages):
        raise RecordError("an empty assistant reply")
    return messages


# --- where records come from ---------------------------------------------------


def _jsonl_records(path: Path) -> Iterator[tuple[str, Any]]:
    """(file:line, record or RecordError) for every non-blank line of a .jsonl file, or of each in a folder."""
    if not path.exists():
        raise SourceError(f"sources: jsonl path {path} does not exist")
    for rel, file in _files(path, (".jsonl",)):
        with file.open("rb") as fh:
            for lineno, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                try:
                    yield f"{rel}:{lineno}", json.loads(raw.strip().decode("utf-8-sig" if lineno == 1 else "utf-8"))
                except UnicodeDecodeError:
                    yield f"{rel}:{lineno}", RecordError("unreadable encoding (not UTF-8)")
                except json.JSONDecodeError as err:
                    yield f"{rel}:{lineno}", RecordError(f"not valid JSON ({err.msg})")
                except RecursionError:  # nested past the decoder's limit: no chat record looks like that
                    yield f"{rel}:{lineno}", RecordError("JSON nested too deeply to parse")


def _dataset_records(src: HFDatasetSource, source: str) -> Iterable[tuple[str, Any]]:
    import datasets  # imported here: loading it takes seconds, and most runs have no dataset source

    try:
        if Path(src.path).is_dir():
            data = datasets.load_from_disk(src.path)
            if isinstance(data, datasets.DatasetDict):
                if src.split not in data:
                    raise SourceError(f"sources: hf_dataset {src.path} has no split {src.split!r} "
                                      f"(it has {', '.join(data)})")
                data = data[src.split]
        else:
            data = datasets.load_dataset(src.path, split=src.split)
    except SourceError:
        raise
    except Exception as err:  # datasets raises many kinds (missing files, offline hub, bad split); one line each
        raise SourceError(f"sources: hf_dataset {src.path}: cannot load split {src.split!r} ({err})") from None
    return ((f"{source}:{index}", row) for index, row in enumerate(data))


def _files(root: Path, suffixes: tuple[str, ...] | None) -> list[tuple[str, Path]]:
    if root.is_file():
        return [(root.name, root)]
    found = [p for p in root.rglob("*") if p.is_file() and (suffixes is None or p.suffix in suffixes)]
    return sorted((p.relative_to(root).as_posix(), p) for p in found)


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
