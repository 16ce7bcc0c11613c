"""Replies in a JSON schema the server enforces, when it does; the prompt's format instruction when not.

A small model does not follow "reply with a JSON array" (SmolLM2-135M through
llama.cpp: four replies of four not JSON), but servers can make it: llama.cpp
turns a schema into a grammar, vLLM into guided decoding, OpenAI into
structured outputs. They take it in two shapes (FORMS), and a server may also
accept the parameter and ignore it, so each endpoint is asked once, by a probe
whose schema no unconstrained model would meet by chance, and its answer is
cached like any reply: a rerun sends no probe, and a moved server is probed
again (the probe's key names the server, a reply's key does not).

The schemas keep to what every one of those servers takes (objects with every
property required and no others, arrays, strings, booleans, one enum in the
probe). OpenAI's strict mode has refused count limits (minItems, maxItems), and
without one a small model writes pairs until max_tokens cuts it off (SmolLM2:
four of four), so n pairs are n named properties ("pair_1".."pair_n"): a count
every server enforces.

For another step (the evaluation's judge, say):

    ep = Endpoint(...)                        # client.open_client, a ReplyCache of its own, a Tally
    path = await probe(ep, base_url, probes)  # once per endpoint (probes: a ReplyCache); sets ep.structured
    got = await structured_reply(ep, messages, SCHEMA, "verdict", label)
    got.value                                 # the JSON value, or None (got.why says why)

Or, from plain (not async) code, all of it in one call (a probe, bounded concurrency, the cache):

    replies, path = ask_structured(base_url, model, [(messages, label), ...], SCHEMA, "verdict", cache_dir)

`structured_reply` never decides whether the value is right: it returns what
the server sent, parsed, and the caller checks its shape and content, because
the schema is not enforced on the prompt-only path and a reply cut off at
max_tokens is not enforced anywhere.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .cache import Reply, ReplyCache, request_key
from .client import Endpoint, RequestFailed, RequestRefused, Tally, _send, ask, open_client
from .parse import NotJSON, load_json

# Tried in this order. "json_schema" is OpenAI's shape, taken by vLLM, Ollama and llama.cpp's own
# llama-server; "json_object" with a "schema" is the only one llama-cpp-python's server (0.3) takes.
FORMS = ("json_schema", "json_object")

PROBE_CODE = "kt-probe-7f3a"
PROBE_SCHEMA = {
    "type": "object",
    "properties": {"code": {"type": "string", "enum": [PROBE_CODE]},
                   "ok": {"type": "array", "items": {"type": "boolean"}}},
    "required": ["code", "ok"],
    "additionalProperties": False,
}
# A request no model answers with that object unless its decoding is constrained to it.
PROBE_MESSAGES = [{"role": "user", "content": "Say hello in one short sentence."}]
PROBE_MAX_TOKENS = 64


def _object(properties: dict[str, dict]) -> dict:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


STRING = {"type": "string"}
PAIR = _object({"question": STRING, "answer": STRING, "quote": STRING})
# The reason first: a verdict written after its reason rests on it, one written before is a guess.
VERDICT_SCHEMA = _object({"reason": STRING, "grounded": {"type": "boolean"}, "useful": {"type": "boolean"}})


def pairs_schema(n: int) -> dict:
    """Exactly n question-answer pairs, {"pair_1": {...}, ...} (parse.as_list reads it as a list)."""
    return _object({f"pair_{i}": PAIR for i in range(1, n + 1)})


def questions_schema(n: int) -> dict:
    """Exactly n questions, {"question_1": "...", ...}."""
    return _object({f"question_{i}": STRING for i in range(1, n + 1)})


def response_format(form: str, name: str, schema: dict) -> dict:
    """The request's response_format for a server that takes `form`."""
    if form == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
    if form == "json_object":
        return {"type": "json_object", "schema": schema}
    raise ValueError(f"unknown response_format form {form!r}; known: {', '.join(FORMS)}")


def probe_passed(content: str) -> bool:
    try:
        value = json.loads(content)
    except ValueError:
        return False
    return (isinstance(value, dict) and set(value) == {"code", "ok"} and value["code"] == PROBE_CODE
            and isinstance(value["ok"], list) and all(isinstance(v, bool) for v in value["ok"]))


async def probe(ep: Endpoint, base_url: str, cache: ReplyCache) -> str:
    """Find out which response_format the endpoint honours, set `ep.structured` to it (None: none), and
    return one line saying so, for the build log. Each answer is kept in `cache` (one probe cache for
    every endpoint of a run: a judge on the teacher's server and model is not probed twice); a probe that
    could not get an answer (server down) is not, so the next run asks again."""
    ep.structured = None
    said = []
    for form in FORMS:
        reply = await _probe_reply(ep, base_url, cache, response_format(form, "probe", PROBE_SCHEMA), form)
        if reply is None:
            said.append(f"{form}: no answer to the probe")
            continue
        if reply.refused is None and probe_passed(reply.content):
            ep.structured = form
            return f"schema path (response_format {form})"
        if reply.refused is None:
            said.append(f"{form} ignored")
            continue
        # Refused: for the response_format, or for anything (a wrong key, no such model)? The same probe
        # without one tells; only a refusal of the format is kept, so a fixed key is probed afresh.
        plain = await _probe_reply(ep, base_url, cache, None, "without response_format")
        if plain is None or plain.refused is not None:
            why = plain.refused if plain is not None else "no answer"
            return f"prompt path (the probe itself failed: {why})"
        said.append(f"{form} refused ({reply.refused})")
        cache.add(_probe_key(ep, base_url, response_format(form, "probe", PROBE_SCHEMA)), _label(ep, base_url, form),
                  reply)
    return "prompt path (" + "; ".join(said) + ")"


def _probe_key(ep: Endpoint, base_url: str, rf: dict | None) -> str:
    # The key names the server: the same model behind another server may take other shapes.
    return request_key(f"{ep.model} @ {base_url}", PROBE_MESSAGES, 0.0, PROBE_MAX_TOKENS, rf)


def _label(ep: Endpoint, base_url: str, form: str) -> str:
    return f"{ep.model} @ {base_url}: {form}"


async def _probe_reply(ep: Endpoint, base_url: str, cache: ReplyCache, rf: dict | None, form: str) -> Reply | None:
    """The cached or new answer to the probe with `rf`; a new refusal is returned but not cached (the
    caller caches it once it knows the refusal is about the format), no answer at all is None."""
    key = _probe_key(ep, base_url, rf)
    reply = cache.get(key)
    if reply is not None:
        return reply
    ep.tally.probes += 1
    reply = await _probe_once(ep, rf)
    if reply is not None and reply.refused is None:
        cache.add(key, _label(ep, base_url, form), reply)
    return reply


async def _probe_once(ep: Endpoint, rf: dict) -> Reply | None:
    # Sent with the endpoint's own retries for 429s, 5xx and timeouts, but at temperature 0 and few
    # tokens; a tally of its own: the budget and the usage are the steps' requests (a probe is a few
    # dozen tokens), and probes are counted apart.
    probe_ep = Endpoint(ep.client, ep.model, 0.0, PROBE_MAX_TOKENS, ep.max_retries, ep.timeout, ep.slots,
                        ep.cache, Tally())
    async with ep.slots:
        try:
            return await _send(probe_ep, PROBE_MESSAGES, rf)
        except RequestRefused as err:
            return Reply("", 0, 0, None, refused=str(err))
        except RequestFailed:
            return None


@dataclass(slots=True)
class StructuredReply:
    reply: Reply  # the raw reply, as cached
    value: Any  # the JSON value in it, or None
    path: str  # "schema": asked with response_format; "prompt": the prompt alone asked for the format
    strict: bool  # the content parsed as JSON as it was, without a repair
    why: str = ""  # when value is None: the reason a rejected row keeps


async def structured_reply(ep: Endpoint, messages: list[dict[str, str]], schema: dict, name: str,
                           label: str) -> StructuredReply:
    """The reply to `messages` as a JSON value: asked with `schema` as response_format when the endpoint's
    probe found one it honours (`ep.structured`), else with the prompt alone, its JSON found with the known
    repairs (parse.load_json). Cached like every request (the schema is part of the key).

    Contract: raises what client.ask raises (BudgetReached, RequestFailed, Deferred); otherwise returns,
    and `value` is None only when no JSON could be read (`why` says so, noting a cut-off at max_tokens).
    The value is NOT checked against `schema`: the caller checks what it uses. `name` is the schema's name
    on the wire (letters, digits, _ and -) and the step the usage counts it under."""
    rf = response_format(ep.structured, name, schema) if ep.structured is not None else None
    reply = await ask(ep, messages, label, rf)
    path = "schema" if rf is not None else "prompt"
    try:
        value, strict = json.loads(reply.content), True
    except ValueError:
        try:
            value, strict = load_json(reply.content), False
        except NotJSON as err:
            cut = " (the reply was cut off at max_tokens)" if reply.finish_reason == "length" else ""
            ep.tally.parsed[name, f"{path}_unparsed"] += 1
            return StructuredReply(reply, None, path, False, str(err) + cut)
    ep.tally.parsed[name, path if strict else f"{path}_repaired"] += 1
    return StructuredReply(reply, value, path, strict)


def ask_structured(base_url: str, model: str, requests: list[tuple[list[dict[str, str]], str]], schema: dict,
                   name: str, cache_dir: Path, *, api_key_env: str | None = None, temperature: float = 0.0,
                   max_tokens: int = 256, concurrency: int = 4, timeout: float = 60.0, max_retries: int = 5,
                   structured: bool = True, log: Callable[[str], None] | None = None) -> tuple[list, str]:
    """The whole mechanism for a step outside teacher generation (the evaluation's judge): `requests` as
    (messages, label) pairs, sent with bounded concurrency, each reply cached in `cache_dir/<name>.jsonl`
    (probes in `cache_dir/probe.jsonl`). Returns one entry per request, in order: a StructuredReply, or a
    str saying why there is none (the request failed); and the path the endpoint took (also logged)."""
    from ...progress import console

    async def run() -> tuple[list, str]:
        client = open_client(base_url, api_key_env, timeout, name)
        cache, probes = ReplyCache(Path(cache_dir) / f"{name}.jsonl"), ReplyCache(Path(cache_dir) / "probe.jsonl")
        try:
            ep = Endpoint(client, model, temperature, max_tokens, max_retries, timeout, asyncio.Semaphore(concurrency),
                          cache, Tally())
            path = await probe(ep, base_url, probes) if structured else f"prompt path ({name}: structured is off)"
            (log or console.print)(f"{name} {model} at {base_url}: {path}")

            async def one(messages, label):
                try:
                    return await structured_reply(ep, messages, schema, name, label)
                except RequestFailed as err:
                    return str(err)

            return list(await asyncio.gather(*(one(m, label) for m, label in requests))), path
        finally:
            cache.close()
            probes.close()
            await client.close()

    return asyncio.run(run())
