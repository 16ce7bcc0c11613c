"""One chat request to any OpenAI-compatible server: cache first, then bounded, retried, counted.

The openai SDK (AsyncOpenAI) does the wire format for every server that speaks
the API (vLLM, Ollama, llama.cpp, hosted APIs): auth header, URL joining,
error bodies turned into typed errors. Its own retries are switched off
(max_retries=0) and done here instead, because this loop must count every
retry for the usage report, read Retry-After as seconds or as an HTTP date,
and leave the budget check to the caller before a request ever starts.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import openai

from ...config import ConfigError
from .cache import Reply, ReplyCache, request_key

BACKOFF_START = 0.5  # seconds before the first retry, doubled each time (as the openai SDK does)
BACKOFF_MAX = 8.0
RETRY_AFTER_MAX = 120.0  # a longer Retry-After is cut to this (the openai SDK's limit too)
NO_KEY = "no-key"  # local servers ignore the key, but the SDK refuses to start without one


class RequestFailed(Exception):
    """A request given up on; the message is the reason kept in the rejected rows."""


class RequestRefused(RequestFailed):
    """The server refused the request itself (a 4xx, or a 5xx about a parameter it does not take):
    sending it again gets the same answer."""


class BudgetReached(Exception):
    pass


class Deferred(Exception):
    """A request put in the pending batch instead of sent: its step waits for the batch's results."""


@dataclass
class Tally:
    """Counters shared by every request of one run, and the token budget they are checked against."""

    budget: int | None = None
    requests: int = 0  # sent to a server (a retried request counts once)
    cached: int = 0  # answered from the cache
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0  # paid in this run
    completion_tokens: int = 0
    # Tokens counted against the budget: this run's, plus those of the cached replies
    # it reuses, so a restarted run does not get a second budget.
    spent: int = 0
    stopped_at_budget: bool = False
    probes: int = 0  # structured-output probes sent (structured.py); not in `requests`
    # Replies read as JSON by (step, path): path "schema" or "prompt", with "_repaired" when a repair was
    # needed and "_unparsed" when none worked (structured.structured_reply)
    parsed: Counter = field(default_factory=Counter)
    # Keys answered in this run (sent, or read from a batch): a later pass that finds them in the cache
    # does not count them as cached.
    fresh: set = field(default_factory=set)

    def check_budget(self) -> None:
        if self.budget is not None and self.spent >= self.budget:
            self.stopped_at_budget = True
            raise BudgetReached

    def usage(self, seconds: float) -> dict:
        parsed = {f"{step}_{outcome}": n for (step, outcome), n in sorted(self.parsed.items())}
        return {"requests": self.requests, "cached": self.cached, "retries": self.retries, "failures": self.failures,
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "stopped_at_budget": self.stopped_at_budget, "seconds": round(seconds, 3),
                **({"probes": self.probes} if self.probes else {}), **parsed}


@dataclass
class Endpoint:
    """A model at a server, the settings its requests are sent with, and its own cache file."""

    client: openai.AsyncOpenAI
    model: str
    temperature: float
    max_tokens: int
    max_retries: int
    timeout: float
    slots: asyncio.Semaphore  # bounds the requests in flight at this endpoint
    cache: ReplyCache
    tally: Tally  # shared by all endpoints of a run: one budget
    # The response_format shape this server honours (structured.FORMS), set by its probe; None: prompt only.
    structured: str | None = None
    batch: Any = None  # a batch.BatchQueue: requests not in the cache join the pending batch instead of being sent


def open_client(base_url: str, api_key_env: str | None, timeout: float, section: str) -> openai.AsyncOpenAI:
    key = NO_KEY
    if api_key_env is not None:
        key = os.environ.get(api_key_env, "")
        if not key:
            raise ConfigError(f"{section}.api_key_env: the environment variable {api_key_env} is not set")
    return openai.AsyncOpenAI(base_url=base_url, api_key=key, timeout=timeout, max_retries=0)


def request_body(ep: Endpoint, messages: list[dict[str, str]], response_format: dict | None = None) -> dict:
    """The chat completion request as sent, one by one or as a line of a batch file."""
    body = {"model": ep.model, "messages": messages, "temperature": ep.temperature, "max_tokens": ep.max_tokens}
    if response_format is not None:
        body["response_format"] = response_format
    return body


async def ask(ep: Endpoint, messages: list[dict[str, str]], label: str, response_format: dict | None = None) -> Reply:
    """The reply to `messages`, from the cache or the server. Raises BudgetReached or RequestFailed
    (and Deferred when the endpoint collects a batch)."""
    key = request_key(ep.model, messages, ep.temperature, ep.max_tokens, response_format)
    hit = ep.cache.get(key)
    if hit is not None:
        if key not in ep.tally.fresh:
            ep.tally.cached += 1
        ep.tally.spent += hit.prompt_tokens + hit.completion_tokens
        return hit
    if ep.batch is not None:
        ep.tally.check_budget()
        # raises Deferred (queued for the next batch) or RequestFailed (a batch of this run could not answer it)
        ep.batch.add(key, label, ep.cache, request_body(ep, messages, response_format))
    # The slot is held through retries and their waits too: a server that answered 429 is not
    # sent more requests at once while it recovers.
    async with ep.slots:
        ep.tally.check_budget()  # after waiting for a slot: the budget may have run out meanwhile
        ep.tally.requests += 1
        try:
            reply = await _send(ep, messages, response_format)
        except RequestFailed:
            ep.tally.failures += 1
            raise
    ep.cache.add(key, label, reply)
    ep.tally.fresh.add(key)
    ep.tally.prompt_tokens += reply.prompt_tokens
    ep.tally.completion_tokens += reply.completion_tokens
    ep.tally.spent += reply.prompt_tokens + reply.completion_tokens
    return reply


async def _send(ep: Endpoint, messages: list[dict[str, str]], response_format: dict | None) -> Reply:
    for attempt in range(ep.max_retries + 1):
        wait = None
        try:
            response = await ep.client.chat.completions.create(**request_body(ep, messages, response_format))
            return reply_of(response, messages)
        except openai.APITimeoutError:
            last = f"timed out after {ep.timeout:g} s"
        except openai.APIConnectionError as err:
            last = f"connection failed: {err.__cause__ or err}"
        except openai.APIStatusError as err:
            last = f"HTTP {err.status_code}: {_server_message(err)}"
            if err.status_code != 429 and err.status_code < 500:
                raise RequestRefused(last) from None  # the request itself is wrong; sending it again cannot help
            if response_format is not None and "response_format" in last:
                # llama-cpp-python's server answers a response_format it does not take with a 500 that names it
                raise RequestRefused(last) from None
            wait = retry_after(err.response.headers)
        except openai.APIError as err:  # a 200 whose body is not a chat completion
            raise RequestFailed(f"unreadable reply: {err}") from None
        if attempt == ep.max_retries:
            break
        ep.tally.retries += 1
        await asyncio.sleep(wait if wait is not None else backoff(attempt))
    tries = ep.max_retries + 1
    raise RequestFailed(f"{last} ({tries} attempt{'s' if tries > 1 else ''})")


async def ask_follow_up(ep: Endpoint, prompt: str, label: str, step: str) -> tuple[Reply | None, str]:
    """A follow-up request (judge, closed-book answer): the reply, or None and why there is none,
    so one chunk's failed follow-up is reported with its pair instead of failing the chunk."""
    try:
        return await ask(ep, [{"role": "user", "content": prompt}], label), ""
    except BudgetReached:
        return None, f"budget reached before the {step}"
    except RequestFailed as err:
        return None, f"{step} request failed: {err}"


def reply_of(response, messages: list[dict[str, str]]) -> Reply:
    if not getattr(response, "choices", None):
        raise RequestFailed("the server's reply had no choices")
    choice = response.choices[0]
    content = choice.message.content or ""
    usage = response.usage
    if usage is not None and usage.prompt_tokens is not None:
        return Reply(content, usage.prompt_tokens, usage.completion_tokens or 0, choice.finish_reason)
    # Some servers leave out usage; about four characters a token keeps the budget meaningful.
    prompt_chars = sum(len(m["content"]) for m in messages)
    return Reply(content, -(-prompt_chars // 4), -(-len(content) // 4), choice.finish_reason)


def _server_message(err: openai.APIStatusError) -> str:
    body = err.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    if isinstance(body, str) and body.strip():
        return body.strip()[:300]
    return err.message


def retry_after(headers) -> float | None:
    """Seconds a server asked us to wait (Retry-After as seconds or an HTTP date), or None."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), RETRY_AFTER_MAX)


def backoff(attempt: int) -> float:
    # Jitter, so requests refused together do not all come back at the same instant.
    return min(BACKOFF_START * 2**attempt, BACKOFF_MAX) * (1 - 0.25 * random.random())
