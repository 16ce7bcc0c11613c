"""The teacher's requests as one OpenAI Batch API job: half the price, answered within a day.

Generation runs in passes. In each, every step that finds its reply in the
cache goes on; a request that is not there joins the pending batch instead of
being sent (client.ask raises Deferred), and its chunk waits. After the pass the
batch is written as a JSONL file, uploaded (files.create, purpose "batch"),
submitted (batches.create, /v1/chat/completions, window "24h"), polled, and its
results (output_file_id, error_file_id) appended to the same reply caches the
one-by-one path fills. The next pass goes one step further; a pass that defers
nothing is the result. Pairs come in the first batch, rewordings and closed-book
answers in the second; a judge on its own server is asked one by one in between.

What a kill at any point costs is what happens on rerun, from the state file
(`batch.json` in the cache folder, rewritten atomically at each step):

    no state file      collect the requests again; those already answered are in the cache
    "uploaded"         the input file is on the server: look for a batch made from it (the kill may
                       have come after batches.create answered), else create one; never a second batch
    "submitted"        poll the batch it names, read its results
    results read       state file removed; a kill while reading leaves it, and reading again skips
                       replies already cached

A request the batch could not answer (its line in the error file, a status other than 200, or none at
all when the batch expired) is rejected with the reason for this run and asked again by the next one.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Callable

import openai
from openai.types.chat import ChatCompletion

from ...records import atomic_write
from ...runs import StageError
from .cache import ReplyCache
from .client import Deferred, RequestFailed, Tally, backoff, reply_of

TERMINAL = ("completed", "failed", "expired", "cancelled")
ENDPOINT = "/v1/chat/completions"
STATE = "batch.json"
INPUT = "batch-input.jsonl"
# How far back batches.list is searched for one made from our input file: the kill that calls for the
# search came between upload and create, moments apart, but the server's clock may differ from ours.
CLOCK_SLACK = 3600


class BatchQueue:
    """Requests waiting for the next batch, and the batch in flight. One per run, for the teacher's endpoint."""

    def __init__(self, client: openai.AsyncOpenAI, folder: Path, caches: dict[str, ReplyCache], tally: Tally,
                 poll_seconds: float, max_retries: int, log: Callable[[str], None]):
        self.client = client
        self.folder = Path(folder)
        self.caches = caches  # by name (the cache file's stem): where each result is appended
        self.tally = tally
        self.poll_seconds = poll_seconds
        self.max_retries = max_retries
        self.log = log
        self.pending: dict[str, dict] = {}  # key -> {"cache", "label", "body"}
        self.failed: dict[str, str] = {}  # key -> why the batch did not answer it (this run only)
        self.submitted = 0  # batches this run created

    @property
    def state_file(self) -> Path:
        return self.folder / STATE

    def add(self, key: str, label: str, cache: ReplyCache, body: dict) -> None:
        """Queue a request for the next batch (raises Deferred), or raise RequestFailed when a batch of
        this run already failed to answer it: a pass must not wait for it again."""
        if key in self.failed:
            raise RequestFailed(self.failed[key])
        name = next(n for n, c in self.caches.items() if c is cache)
        self.pending.setdefault(key, {"cache": name, "label": label, "body": body})
        raise Deferred

    # --- the state machine ----------------------------------------------------

    async def resume(self) -> None:
        """Finish a batch an earlier run left: find or create it, wait for it, read it."""
        state = self._load()
        if state is not None:
            self.log(f"teacher batch: resuming the batch an earlier run left ({state['state']})")
            await self._finish(state)

    async def flush(self) -> None:
        """Send the pending requests as one batch, wait for it and read its results into the caches."""
        if not self.pending:
            return
        requests, lines = {}, []
        for i, (key, item) in enumerate(self.pending.items()):
            custom_id = f"{item['cache']}-{i}"
            requests[custom_id] = {"key": key, "cache": item["cache"], "label": item["label"]}
            lines.append(json.dumps({"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": item["body"]},
                                    ensure_ascii=False))
        self.pending = {}
        data = ("\n".join(lines) + "\n").encode("utf-8")
        atomic_write(self.folder / INPUT, data)  # kept: what was asked, for whoever reads the cache folder
        uploaded = await self._call("upload the batch file", lambda: self.client.files.create(
            file=(INPUT, data, "application/jsonl"), purpose="batch"))
        state = {"state": "uploaded", "input_file_id": uploaded.id, "uploaded_at": time.time(), "requests": requests}
        self._save(state)
        await self._finish(state)

    async def _finish(self, state: dict) -> None:
        if state["state"] == "uploaded":
            batch = await self._made_from(state["input_file_id"], state["uploaded_at"])
            if batch is None:
                batch = await self._call("create the batch", lambda: self.client.batches.create(
                    input_file_id=state["input_file_id"], endpoint=ENDPOINT, completion_window="24h",
                    metadata={"made_by": "knowtune"}))
                self.submitted += 1
            state = {**state, "state": "submitted", "batch_id": batch.id}
            self._save(state)
            self.log(f"teacher batch {batch.id}: submitted, {len(state['requests'])} requests; "
                     f"polling every {self.poll_seconds:g} s")
        batch = await self._wait(state["batch_id"])
        self._read(state, batch, await self._lines(batch.output_file_id), await self._lines(batch.error_file_id))
        self.state_file.unlink(missing_ok=True)

    async def _made_from(self, input_file_id: str, uploaded_at: float):
        async def find():
            async for batch in self.client.batches.list(limit=100):
                if batch.input_file_id == input_file_id:
                    return batch
                if batch.created_at < uploaded_at - CLOCK_SLACK:  # newest first: nothing older can be ours
                    return None
            return None

        return await self._call("list the batches", find)

    async def _wait(self, batch_id: str):
        status = None
        while True:
            batch = await self._call("ask for the batch's status", lambda: self.client.batches.retrieve(batch_id))
            if batch.status != status:
                status = batch.status
                counts = batch.request_counts
                done = f" ({counts.completed} of {counts.total} answered)" if counts and counts.total else ""
                self.log(f"teacher batch {batch_id}: {status}{done}")
            if status in TERMINAL:
                return batch
            await asyncio.sleep(self.poll_seconds)

    async def _lines(self, file_id: str | None) -> list[dict]:
        if not file_id:
            return []
        content = await self._call("download the batch results", lambda: self.client.files.content(file_id))
        rows = []
        for line in content.text.splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue  # a damaged line: its request is reported as unanswered below
        return rows

    def _read(self, state: dict, batch, output: list[dict], errors: list[dict]) -> None:
        requests = state["requests"]
        answered: set[str] = set()
        for row in output + errors:
            req = requests.get(row.get("custom_id"))
            if req is None or row["custom_id"] in answered:
                continue
            answered.add(row["custom_id"])
            reason = _row_failure(row)
            if reason is not None:
                self.failed[req["key"]] = f"batch: {reason}"
                self.tally.failures += 1
                continue
            cache = self.caches[req["cache"]]
            if cache.get(req["key"]) is None:  # read before, by a run killed while reading
                body = row["response"]["body"]
                reply = reply_of(ChatCompletion.model_validate(body), body.get("messages") or [])
                cache.add(req["key"], req["label"], reply)
                self.tally.requests += 1
                self.tally.prompt_tokens += reply.prompt_tokens
                self.tally.completion_tokens += reply.completion_tokens
            self.tally.fresh.add(req["key"])
        missing = [r for cid, r in requests.items() if cid not in answered]
        why = _batch_failure(batch)
        for req in missing:
            self.failed[req["key"]] = f"batch {batch.status} without answering it" + (f": {why}" if why else "")
            self.tally.failures += 1

    # --- plumbing ---------------------------------------------------------------

    async def _call(self, what: str, call):
        """A Batch API call, retried like a chat request; a failure stops the run with the state kept."""
        for attempt in range(self.max_retries + 1):
            try:
                return await call()
            except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError) as err:
                last = err
                if attempt < self.max_retries:
                    await asyncio.sleep(backoff(attempt))
            except openai.APIStatusError as err:
                last = err
                break
        kept = f"; rerun to continue (state in {self.state_file})" if self.state_file.exists() else ""
        raise StageError(f"teacher batch: could not {what}: {_message(last)}{kept}")

    def _load(self) -> dict | None:
        if not self.state_file.exists():
            return None
        try:
            return json.loads(self.state_file.read_text(encoding="utf-8"))
        except ValueError:
            raise StageError(f"{self.state_file}: not a batch state file; remove it to submit a new batch") from None

    def _save(self, state: dict) -> None:
        atomic_write(self.state_file, json.dumps(state, indent=1))


def _row_failure(row: dict) -> str | None:
    """Why a result line holds no reply, or None."""
    if row.get("error"):
        err = row["error"]
        return err.get("message") or str(err) if isinstance(err, dict) else str(err)
    response = row.get("response") or {}
    status = response.get("status_code")
    body = response.get("body")
    if status != 200:
        message = body.get("error", {}).get("message") if isinstance(body, dict) else None
        return f"HTTP {status}: {message or body}"
    if not isinstance(body, dict) or not body.get("choices"):
        return "the reply had no choices"
    return None


def _batch_failure(batch) -> str:
    errors = getattr(batch, "errors", None)
    data = getattr(errors, "data", None) or []
    return "; ".join(e.message for e in data if getattr(e, "message", None))


def _message(err: Exception) -> str:
    if isinstance(err, openai.APIStatusError):
        body = err.body
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            return f"HTTP {err.status_code}: {body['message']}"
        return f"HTTP {err.status_code}"
    return str(err.__cause__ or err)
