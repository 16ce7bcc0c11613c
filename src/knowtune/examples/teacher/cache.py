"""Raw replies on disk, one JSON line each, written the moment they arrive.

A teacher run can cost real money and hours, so a run killed halfway must not
pay for any answer twice. Each reply is appended and fsynced before the run
moves on (an atomic rewrite of the whole file per reply would cost O(n^2));
a kill can tear at most the last line, which is dropped on load and its
request sent again. Raw replies are kept rather than parsed pairs, so a change
to the validation rules is applied to the cache without a single new request.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(slots=True)
class Reply:
    content: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None = None
    # The server's reason when it refused the request outright (a 4xx): kept only for probes, where a
    # refusal is the answer to what the probe asks (this server does not take that response_format).
    refused: str | None = None


def request_key(model: str, messages: list[dict[str, str]], temperature: float, max_tokens: int,
                response_format: dict | None = None) -> str:
    """Everything that shapes the answer, and nothing about where it is sent: the same request
    to another server address (a moved vLLM, a proxy) is the same request. The rendered messages
    hold the prompt template, the chunk text, the pair count and the names the questions use; a
    schema the reply was constrained to shapes it too. Without one the key is what it always was,
    so caches written before structured output still answer prompt-only requests."""
    fields = [model, messages, temperature, max_tokens] + ([response_format] if response_format else [])
    blob = json.dumps(fields, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def load_replies(path: Path) -> dict[str, Reply]:
    """The replies in a cache file, read only. A torn or damaged line is skipped: its request is sent again."""
    replies: dict[str, Reply] = {}
    if not path.exists():
        return replies
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    for line in complete.splitlines():
        try:
            obj = json.loads(line)
            replies[obj["key"]] = Reply(obj["content"], obj["prompt_tokens"], obj["completion_tokens"],
                                        obj.get("finish_reason"), obj.get("refused"))
        except (ValueError, KeyError, TypeError):
            continue
    return replies


class ReplyCache:
    """A cache file open for appending. Not shared between processes: one run owns its cache folder."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.replies = load_replies(self.path)
        self._drop_torn_tail()
        self._fh = self.path.open("ab")

    def get(self, key: str) -> Reply | None:
        return self.replies.get(key)

    def add(self, key: str, label: str, reply: Reply) -> None:
        # `label` (the chunk id) is only for people reading the file; lookups use the key.
        row = {"key": key, "label": label, "content": reply.content, "prompt_tokens": reply.prompt_tokens,
               "completion_tokens": reply.completion_tokens, "finish_reason": reply.finish_reason}
        if reply.refused is not None:
            row["refused"] = reply.refused
        line = json.dumps(row, ensure_ascii=False)
        self._fh.write(line.encode("utf-8") + b"\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.replies[key] = reply

    def close(self) -> None:
        self._fh.close()

    def _drop_torn_tail(self) -> None:
        # Without this, the next line appended would be glued to the torn one and lost with it.
        if not self.path.exists():
            return
        size = self.path.stat().st_size
        with self.path.open("rb+") as fh:
            data = fh.read()
            end = data.rfind(b"\n") + 1
            if end < size:
                fh.truncate(end)
                fh.flush()
                os.fsync(fh.fileno())
