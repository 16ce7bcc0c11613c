"""An OpenAI-compatible HTTP server for a trained model: FastAPI routes over the batching engine.

    GET  /                      a web chat page
    GET  /health                liveness, and what the engine is doing
    GET  /v1/models             the one model served
    POST /v1/chat/completions   chat, with the model's own chat template (the one it was trained with)
    POST /v1/completions        plain text continuation

Prompts are rendered with knowtune.chat.prompt_ids, cut into tokens exactly as in training. An absent
`temperature` means what the model's generation_config.json says: greedy for the models knowtune trains
(do_sample unset), so the server answers as the evaluation measured; 0 is greedy, anything above samples.

Safety: the key in KNOWTUNE_API_KEY (when set) is required on /v1/*; bodies are limited in size; POST bodies
must say Content-Type: application/json, which a web page on another site cannot send without a CORS
preflight this server never grants, so such a page cannot make a local server generate; and the Host header
must name this machine when the server listens on loopback only, which defeats DNS rebinding.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

from fastapi import Depends, FastAPI
from fastapi import Request as HTTPRequest
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from .engine import Engine, Event, Request
from .model import Loaded
from .protocol import APIError, ChatRequest, CompletionRequest, Sampling, context_error, parse, usage
from .rag import Retrieve, with_passages

log = logging.getLogger("knowtune.serve")

MAX_BODY_BYTES = 1 << 20  # 1 MiB: far more text than any context this server runs holds
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
PAGE = Path(__file__).with_name("page.html")


class Prompts:
    """Token ids of prompts, one at a time: a tokenizer shared by threads mixes up its special-token setting
    between calls (knowtune.chat switches it per message piece), giving wrong ids under load."""

    def __init__(self, tokenizer: Any):
        self._tokenizer = tokenizer
        self._lock = threading.Lock()

    def chat(self, messages: list[dict[str, str]]) -> list[int]:
        from ..chat import prompt_ids

        if not self._tokenizer.chat_template:
            raise APIError(400, "this model has no chat template; use /v1/completions")
        with self._lock:
            try:
                return prompt_ids(self._tokenizer, messages)
            except Exception as err:  # the template's own checks (roles must alternate, ...) speak to the user
                raise APIError(400, f"the model's chat template refused these messages: {err}",
                               param="messages") from None

    def text(self, prompt: str) -> list[int]:
        with self._lock:
            return self._tokenizer(prompt)["input_ids"]


def create_app(loaded: Loaded, api_key: str | None = None, max_batch: int = 32,
               max_body_bytes: int = MAX_BODY_BYTES, retrieve: Retrieve | None = None,
               loopback_only: bool = True) -> Any:
    engine = Engine(loaded.model, loaded.decoder, loaded.stops, max_batch=max_batch)
    prompts = Prompts(loaded.tokenizer)
    created = int(time.time())

    @asynccontextmanager
    async def lifespan(app):
        engine.start()
        yield
        await asyncio.to_thread(engine.close)

    app = FastAPI(title="knowtune", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine = engine
    if loopback_only:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(LOOPBACK))

    def error_response(err: APIError):
        headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
        return JSONResponse(err.body(), status_code=err.status, headers=headers)

    @app.exception_handler(APIError)
    async def api_error(request, err: APIError):
        return error_response(err)

    @app.exception_handler(HTTPException)
    async def http_error(request, err: HTTPException):
        kind = "not_found_error" if err.status_code == 404 else "invalid_request_error"
        return error_response(APIError(err.status_code, str(err.detail), type=kind))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, err):
        return error_response(APIError(400, str(err)))

    @app.exception_handler(Exception)
    async def server_error(request, err: Exception):
        log.exception("request failed")  # the traceback goes to the server's log, not to the client
        return error_response(APIError(500, "internal server error", type="server_error"))

    def require_key(request: HTTPRequest) -> None:
        if api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise APIError(401, "You didn't provide an API key. Send it in an Authorization header as "
                                "'Authorization: Bearer YOUR_KEY' (the server's key is in KNOWTUNE_API_KEY).",
                           code="invalid_api_key")
        if not hmac.compare_digest(given.strip().encode(), api_key.encode()):
            raise APIError(401, "Incorrect API key provided.", code="invalid_api_key")

    async def read_json(request: HTTPRequest) -> Any:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise APIError(415, f"the request body must be JSON, sent with Content-Type: application/json "
                                f"(not {kind or 'none'})")
        declared = request.headers.get("content-length", "")
        body = bytearray()
        if not (declared.isdigit() and int(declared) > max_body_bytes):
            async for chunk in request.stream():  # counted as it comes: a chunked body declares no length
                body += chunk
                if len(body) > max_body_bytes:
                    break
        if len(body) > max_body_bytes or (declared.isdigit() and int(declared) > max_body_bytes):
            # answered without reading the rest (FastAPI's own max_body_size answers in plain text, which
            # OpenAI clients cannot read a message from)
            raise APIError(413, f"the request body is larger than this server accepts ({max_body_bytes} bytes)")
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as err:
            raise APIError(400, f"the request body is not valid JSON: {err}") from None

    def check_model(request: Sampling) -> None:
        if request.model != loaded.name:
            raise APIError(404, f"The model `{request.model}` does not exist; this server serves "
                                f"`{loaded.name}`.", type="not_found_error", code="model_not_found", param="model")

    def engine_request(request: Sampling, ids: list[int], where: str) -> Request:
        wanted = request.wanted_tokens()
        room = loaded.context - len(ids)
        if not ids:
            raise APIError(400, "the prompt is empty", param="prompt")
        if room <= 0 or (wanted is not None and wanted > room):
            raise context_error(loaded.context, len(ids), wanted or 0, where)
        if request.temperature is None:
            temperature = 0.0 if loaded.greedy_default else loaded.temperature
            top_p = request.top_p if request.top_p is not None else (1.0 if loaded.greedy_default else loaded.top_p)
        else:
            temperature, top_p = request.temperature, request.top_p if request.top_p is not None else 1.0
        return Request(prompt_ids=ids, max_new_tokens=wanted or room, emit=_unset, temperature=temperature,
                       top_p=top_p, seed=request.seed, stop=request.stop_strings(),
                       ignore_eos=request.ignore_eos)

    @app.get("/", include_in_schema=False)
    async def page():
        nonce = secrets.token_urlsafe(16)
        name = json.dumps(loaded.name).replace("<", "\\u003c")  # no "</script>" inside the script
        html = PAGE.read_text().replace("{{MODEL}}", name).replace("{{NONCE}}", nonce)
        policy = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
                  "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
        return HTMLResponse(html, headers={"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff"})

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": loaded.name, **engine.stats()}

    @app.get("/v1/models", dependencies=[Depends(require_key)])
    async def models():
        return {"object": "list", "data": [{"id": loaded.name, "object": "model", "created": created,
                                            "owned_by": "knowtune", "max_model_len": loaded.context}]}

    @app.post("/v1/chat/completions", dependencies=[Depends(require_key)])
    async def chat_completions(http: HTTPRequest):
        request = parse(ChatRequest, await read_json(http))
        check_model(request)
        messages = request.chat()
        if retrieve is not None:
            question = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
            messages = with_passages(messages, await asyncio.to_thread(retrieve, question))
        job = engine_request(request, prompts.chat(messages), "messages")
        reply = Reply("chatcmpl", "chat.completion", loaded.name)
        if request.stream:
            return stream(reply.chat_chunks(run(engine, job), request.include_usage()))
        text, end = await collect(run(engine, job, http))
        return reply.chat(text, end)

    @app.post("/v1/completions", dependencies=[Depends(require_key)])
    async def completions(http: HTTPRequest):
        request = parse(CompletionRequest, await read_json(http))
        check_model(request)
        job = engine_request(request, prompts.text(request.text()), "prompt")
        reply = Reply("cmpl", "text_completion", loaded.name)
        if request.stream:
            return stream(reply.text_chunks(run(engine, job), request.include_usage()))
        text, end = await collect(run(engine, job, http))
        return reply.text(text, end)

    return app


def _unset(event: Event) -> None:  # replaced by run() before the engine sees the request
    raise RuntimeError("request emitted before it was submitted")


async def run(engine: Engine, request: Request, http: Any = None) -> AsyncIterator[Event]:
    """The engine's events for `request`, on the event loop; a client that goes away cancels the request.

    A streaming response notices a client leaving by itself (it is cancelled, and `finally` runs); a plain one
    passes its `http` request to be asked every second."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Event] = asyncio.Queue()

    def emit(event: Event) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, event)
        except RuntimeError:  # the loop closed: the server is shutting down
            request.cancel()

    request.emit = emit
    engine.submit(request)
    getting, checked = None, time.monotonic()
    try:
        while True:
            getting = getting or asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getting}, timeout=1.0)
            if http is not None and time.monotonic() - checked >= 1.0:
                checked = time.monotonic()
                if await http.is_disconnected():
                    return
            if done:
                event, getting = getting.result(), None
                yield event
                if event.final:
                    return
    finally:
        request.cancel()  # frees the slot at the next step; nothing happens when the request finished
        if getting is not None:
            getting.cancel()


async def collect(events: AsyncIterator[Event]) -> tuple[str, Event]:
    parts = []
    async for event in events:
        parts.append(event.text)
        if event.final:
            if event.error:
                raise APIError(500, event.error, type="server_error")
            return "".join(parts), event
    raise APIError(499, "the client closed the request")


def stream(chunks: AsyncIterator[dict]) -> Any:
    from sse_starlette import EventSourceResponse

    async def lines():
        async for chunk in chunks:
            yield {"data": json.dumps(chunk, ensure_ascii=False)}
        yield {"data": "[DONE]"}

    return EventSourceResponse(lines(), sep="\n", ping=15)


class Reply:
    """Response bodies and stream chunks in OpenAI's shapes, for one request."""

    def __init__(self, prefix: str, kind: str, model: str):
        self.id = f"{prefix}-{secrets.token_hex(12)}"
        self.kind, self.model, self.created = kind, model, int(time.time())

    def _body(self, kind: str, choices: list[dict], **extra) -> dict:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model, "choices": choices,
                **extra}

    def chat(self, text: str, end: Event) -> dict:
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                  "finish_reason": end.finish_reason}
        return self._body(self.kind, [choice], usage=usage(end.prompt_tokens, end.completion_tokens))

    def text(self, text: str, end: Event) -> dict:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": end.finish_reason}
        return self._body(self.kind, [choice], usage=usage(end.prompt_tokens, end.completion_tokens))

    async def chat_chunks(self, events: AsyncIterator[Event], include_usage: bool) -> AsyncIterator[dict]:
        def chunk(delta: dict, finish: str | None = None) -> dict:
            extra = {"usage": None} if include_usage else {}
            return self._body("chat.completion.chunk",
                              [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra)

        yield chunk({"role": "assistant", "content": ""})
        async for event in events:
            if event.error:
                yield {"error": APIError(500, event.error, type="server_error").body()["error"]}
                return
            if event.text:
                yield chunk({"content": event.text})
            if event.final:
                yield chunk({}, event.finish_reason)
                if include_usage:
                    yield self._body("chat.completion.chunk", [],
                                     usage=usage(event.prompt_tokens, event.completion_tokens))

    async def text_chunks(self, events: AsyncIterator[Event], include_usage: bool) -> AsyncIterator[dict]:
        def chunk(text: str, finish: str | None = None) -> dict:
            extra = {"usage": None} if include_usage else {}
            return self._body(self.kind, [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
                              **extra)

        async for event in events:
            if event.error:
                yield {"error": APIError(500, event.error, type="server_error").body()["error"]}
                return
            if event.text or event.final:
                yield chunk(event.text, event.finish_reason)
            if event.final and include_usage:
                yield self._body(self.kind, [], usage=usage(event.prompt_tokens, event.completion_tokens))


def serve(loaded: Loaded, host: str, port: int, api_key: str | None, max_batch: int,
          retrieve: Retrieve | None = None) -> None:
    import uvicorn

    app = create_app(loaded, api_key=api_key, max_batch=max_batch, retrieve=retrieve,
                     loopback_only=host in LOOPBACK)
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)
