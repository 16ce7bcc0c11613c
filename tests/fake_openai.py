"""A real HTTP server speaking POST /v1/chat/completions, for tests and benchmarks of the teacher.

It validates requests as the real APIs do (400 with an OpenAI-style error body,
401 for a missing or wrong key) and answers like a teacher that read the
passage: each question names the file and each quote is a real sentence of the
passage. Tests steer it per request kind and prompt text:

    server.on("ALPHA", "429", "good")        first request mentioning ALPHA gets 429, later ones "good"
    server.on("BETA", "judge_no", kind="judge")

The last behaviour in a list sticks. It records every request it received.

Structured output: by default it honours `response_format` (both shapes: OpenAI's "json_schema" and
llama-cpp-python's "json_object" with a "schema") and answers in the schema's shape; `response_format=`
"ignore" accepts the parameter and answers as if it were not there (what a server that does not support it
does), "json_object_only" refuses "json_schema" with llama-cpp-python's 500, "refuse" answers 400 to both.

The Batch API: POST /v1/files (multipart), GET /v1/files/{id}/content, POST /v1/batches, GET /v1/batches
and /v1/batches/{id}. Each status request moves a batch one step (validating -> in_progress -> finalizing
-> completed), unless `hold_batches` is set, which keeps it in_progress; at completion every line is
answered as the chat endpoint would answer it, 200s into the output file, the others into the error file.

Run on its own (`python tests/fake_openai.py --delay 0.2`) it prints its URL and serves until killed.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

ROLES = {"system", "user", "assistant", "tool", "developer"}
DEFAULTS = {"qa": "good", "judge": "judge_yes", "closed_book": "closed_guess", "paraphrase": "reword_good",
            "probe": "probe"}
PROBE_PROMPT = "Say hello in one short sentence."  # knowtune's structured-output probe (structured.py)
BATCH_STEPS = ("validating", "in_progress", "finalizing", "completed")


def error(message: str, type_: str = "invalid_request_error", code: str | None = None, param: str | None = None):
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def sentences(passage: str) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+|\n+", passage)
    return [p.strip() for p in parts if len(p.split()) >= 3]


class _BatchAPI:
    """The Batch API's files and batches, kept in the FakeOpenAI they belong to (mixed into it)."""

    def upload(self, headers, raw: bytes) -> tuple[int, dict, dict]:
        ctype = headers.get("Content-Type", "")
        if not ctype.startswith("multipart/form-data"):
            return 400, {}, error("Expected a multipart/form-data body.")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {ctype}\r\n\r\n".encode() + raw)
        fields, upload = {}, None
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if part.get_filename():
                upload = (part.get_filename(), part.get_payload(decode=True))
            else:
                fields[name] = part.get_content().strip()
        if upload is None:
            return 400, {}, error("Missing required parameter: 'file'.", param="file")
        if fields.get("purpose") not in ("batch", "fine-tune", "assistants", "vision", "user_data", "evals"):
            return 400, {}, error("Invalid value for 'purpose'.", param="purpose")
        with self.lock:
            file_id = f"file-fake{next(self._ids)}"
            self.files[file_id] = {"purpose": fields["purpose"], "filename": upload[0], "data": upload[1]}
        return 200, {}, self._file_object(file_id)

    def _file_object(self, file_id: str) -> dict:
        f = self.files[file_id]
        return {"id": file_id, "object": "file", "bytes": len(f["data"]), "created_at": int(time.time()),
                "filename": f["filename"], "purpose": f["purpose"], "status": "processed"}

    def create_batch(self, body) -> tuple[int, dict, dict]:
        if not isinstance(body, dict):
            return 400, {}, error("We could not parse the JSON body of your request.")
        file = self.files.get(body.get("input_file_id"))
        if file is None:
            return 404, {}, error(f"No such File object: {body.get('input_file_id')}", param="input_file_id")
        if file["purpose"] != "batch":
            return 400, {}, error("The file's purpose must be 'batch'.", param="input_file_id")
        if body.get("endpoint") != "/v1/chat/completions" or body.get("completion_window") != "24h":
            return 400, {}, error("Invalid endpoint or completion_window.", param="endpoint")
        lines = [json.loads(line) for line in file["data"].decode().splitlines() if line.strip()]
        now = int(time.time())
        with self.lock:
            batch_id = f"batch_fake{next(self._ids)}"
            self.batches[batch_id] = {
                "id": batch_id, "object": "batch", "endpoint": body["endpoint"], "errors": None,
                "input_file_id": body["input_file_id"], "completion_window": "24h", "status": "validating",
                "output_file_id": None, "error_file_id": None, "created_at": now, "in_progress_at": None,
                "expires_at": now + 86400, "finalizing_at": None, "completed_at": None, "failed_at": None,
                "expired_at": None, "cancelling_at": None, "cancelled_at": None,
                "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
                "metadata": body.get("metadata"), "_lines": lines,
            }
        time.sleep(self.create_delay)
        return 200, {}, self._shown(batch_id)

    def _shown(self, batch_id: str) -> dict:
        return {k: v for k, v in self.batches[batch_id].items() if not k.startswith("_")}

    def get(self, path: str, headers) -> tuple[int, dict, dict | bytes]:
        url = urlsplit(path)
        parts = url.path.rstrip("/").split("/")
        if url.path.rstrip("/") == "/v1/batches":
            with self.lock:
                data = [self._shown(b) for b in sorted(self.batches, key=lambda b: -int(b[len("batch_fake"):]))]
            return 200, {}, {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                             "last_id": data[-1]["id"] if data else None, "has_more": False}
        if len(parts) == 4 and parts[:3] == ["", "v1", "batches"]:
            if parts[3] not in self.batches:
                return 404, {}, error(f"No such Batch object: {parts[3]}")
            shown = self._shown(parts[3])
            self._advance(parts[3], headers)  # the next status request sees the next step
            return 200, {}, shown
        if len(parts) == 5 and parts[:3] == ["", "v1", "files"] and parts[4] == "content":
            if parts[3] not in self.files:
                return 404, {}, error(f"No such File object: {parts[3]}")
            return 200, {}, self.files[parts[3]]["data"]
        return 404, {}, error(f"Unknown request URL: GET {path}.")

    def _advance(self, batch_id: str, headers) -> None:
        batch = self.batches[batch_id]
        if batch["status"] == "completed" or (self.hold_batches and batch["status"] == "in_progress"):
            return
        status = BATCH_STEPS[BATCH_STEPS.index(batch["status"]) + 1]
        if status == "completed":
            self._run_batch(batch, headers)
        batch["status"] = status
        batch[f"{status}_at"] = int(time.time())

    def _run_batch(self, batch: dict, headers) -> None:
        out, err = [], []
        for line in batch["_lines"]:
            record = {"path": f"batch:{batch['id']}", "headers": {}, "start": time.monotonic(), "time": time.time(),
                      "prompt": None, "kind": None, "behaviour": None, "status": None, "body": line.get("body")}
            with self.lock:
                self.requests.append(record)
            status, _, payload = self.respond(line.get("body"), headers, record)
            record["status"] = status
            record["end"] = time.monotonic()
            row = {"id": f"batch_req_{next(self._ids)}", "custom_id": line["custom_id"],
                   "response": {"status_code": status, "request_id": f"req_{next(self._ids)}", "body": payload},
                   "error": None}
            (out if status == 200 else err).append(row)
        for name, rows in (("output_file_id", out), ("error_file_id", err)):
            if rows:
                file_id = f"file-fake{next(self._ids)}"
                data = "".join(json.dumps(r) + "\n" for r in rows).encode()
                self.files[file_id] = {"purpose": "batch_output", "filename": f"{name}.jsonl", "data": data}
                batch[name] = file_id
        batch["request_counts"] = {"total": len(batch["_lines"]), "completed": len(out), "failed": len(err)}


class FakeOpenAI(_BatchAPI):
    def __init__(self, delay: float = 0.0, api_key: str | None = None, retry_after: str = "1",
                 slow_seconds: float = 2.0, response_format: str = "honour"):
        self.delay = delay  # seconds before every answer
        self.api_key = api_key  # when set, requests must carry it
        self.retry_after = retry_after  # the Retry-After header sent with 429
        self.slow_seconds = slow_seconds  # how long "slow" waits before answering
        self.response_format = response_format  # "honour", "ignore", "json_object_only" or "refuse"
        self.files: dict[str, dict] = {}  # the Batch API's files: id -> {"purpose", "filename", "data"}
        self.batches: dict[str, dict] = {}  # id -> the batch object as the API shows it, plus "_lines"
        self.hold_batches = False  # keep every batch in_progress until this is False again
        self.create_delay = 0.0  # seconds between making a batch and answering batches.create (a kill's window)
        self._ids = itertools.count(1)
        self.rules: list[tuple[str, str, list[str]]] = []  # (kind, text in the prompt, behaviours)
        self.requests: list[dict] = []  # chat requests, sent one by one or answered inside a batch
        self.gets: list[dict] = []  # GET requests (batch status, file contents)
        self.in_flight = 0
        self.max_in_flight = 0
        self.answers: dict[str, str] = {}  # question -> the answer given, for "closed_same"
        self.lock = threading.Lock()
        self.httpd = _Server(("127.0.0.1", 0), _handler(self))
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> "FakeOpenAI":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def on(self, text: str, *behaviours: str, kind: str = "qa") -> None:
        self.rules.append((kind, text, list(behaviours)))

    @property
    def chats(self) -> list[dict]:
        """The chat requests received (one by one or inside a batch), but for knowtune's probes."""
        return [r for r in self.requests if r.get("kind") != "probe"
                and (r["path"].rstrip("/").endswith("/chat/completions") or r["path"].startswith("batch:"))]

    def prompts(self, kind: str | None = None) -> list[str]:
        """The prompt of every well-formed request received, in order, optionally of one kind."""
        return [r["prompt"] for r in self.requests if r["prompt"] is not None and kind in (None, r["kind"])]

    def _behaviour(self, kind: str, prompt: str) -> str:
        with self.lock:
            for rule_kind, text, behaviours in self.rules:
                if rule_kind == kind and text in prompt:
                    return behaviours.pop(0) if len(behaviours) > 1 else behaviours[0]
        return DEFAULTS[kind]

    # --- answering --------------------------------------------------------

    def respond(self, body: dict, headers, record: dict) -> tuple[int, dict, dict]:
        """(status, extra headers, JSON body) for one request; notes what it made of it in `record`."""
        if isinstance(body, dict) and isinstance(body.get("messages"), list) and any(
                isinstance(m, dict) and m.get("content") == PROBE_PROMPT for m in body["messages"]):
            record["kind"] = "probe"  # known before validation: a probe the server refuses is still a probe
        if self.api_key is not None and headers.get("Authorization") != f"Bearer {self.api_key}":
            return 401, {}, error("Incorrect API key provided.", code="invalid_api_key")
        problem = _invalid(body)
        if problem:
            return 400, {}, error(problem[0], param=problem[1])
        prompt = "\n".join(m["content"] for m in body["messages"] if isinstance(m["content"], str))
        kind = ("probe" if prompt == PROBE_PROMPT else "judge" if '"grounded"' in prompt
                else "paraphrase" if '"questions"' in prompt else "qa" if "<passage>" in prompt else "closed_book")
        behaviour = self._behaviour(kind, prompt)
        schema = _schema(body.get("response_format"))
        record.update(prompt=prompt, kind=kind, behaviour=behaviour, schema=schema is not None)
        if schema is not None and self.response_format == "refuse":
            return 400, {}, error("response_format is not supported by this server.", param="response_format")
        if schema is not None and self.response_format == "json_object_only" and \
                body["response_format"].get("type") == "json_schema":
            # what llama-cpp-python's server (0.3) answers: its request validation error, as a 500
            return 500, {}, error("1 validation error: ('body', 'response_format', 'type'): Input should be 'text' "
                                  "or 'json_object'", "internal_server_error")
        structured = schema is not None and self.response_format != "ignore"
        record["structured"] = structured
        if behaviour == "429":
            limited = error("Rate limit reached.", "requests", "rate_limit_exceeded")
            return 429, {"Retry-After": self.retry_after}, limited
        if behaviour == "500":
            return 500, {}, error("The server had an error while processing your request.", "server_error")
        if behaviour == "too_long":
            return 400, {}, error("This model's maximum context length is 8192 tokens.", code="context_length_exceeded")
        if behaviour == "slow":
            time.sleep(self.slow_seconds)
        time.sleep(self.delay)
        content = self._content(kind, behaviour, prompt, structured)
        return 200, {}, {
            "id": f"chatcmpl-fake-{len(self.requests)}", "object": "chat.completion", "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(content.split()),
                      "total_tokens": len(prompt.split()) + len(content.split())},
        }

    def _content(self, kind: str, behaviour: str, prompt: str, structured: bool) -> str:
        if kind == "probe":
            # what a model says unconstrained, or the one object the probe's schema allows
            return json.dumps({"code": "kt-probe-7f3a", "ok": [True]}) if structured else "Hello there!"
        if kind == "paraphrase":
            question = _find(r"^Question: (.*)$", prompt, re.MULTILINE) or "What?"
            count = int(_find(r"in (\d+) different ways", prompt) or 2)
            stem = question.rstrip("?")
            good = [f"Could you tell me: {stem[0].lower()}{stem[1:]}?", f"{stem}, according to the sources?",
                    f"Do you know {stem[0].lower()}{stem[1:]}?", f"Quick one: {stem}?"][:count]
            if behaviour == "reword_bad":
                good = [question, "Tell me about the lamp.", f"What does the passage say about {stem}?",
                        good[0], good[0].upper()]
            named = {f"question_{i}": q for i, q in enumerate(good, 1)}  # the schema's shape (pairs_schema)
            return json.dumps(named if structured else good)
        if kind == "judge":
            if behaviour == "judge_garbage":
                return "Looks fine to me!"
            ok = behaviour == "judge_yes"
            return json.dumps({"grounded": ok, "useful": True,
                               "reason": "the answer is stated in the source" if ok else "the answer adds a claim"})
        if kind == "closed_book":
            question = prompt.split("Question:", 1)[-1].strip()
            if behaviour == "closed_same":
                return self.answers.get(question, "")
            return "I believe it is configured in a settings file somewhere."
        if behaviour == "malformed":
            return 'Here are the pairs: [{"question": "What is'
        path = _find(r"^Source: (.*)$", prompt, re.MULTILINE) or "the project"
        passage = _find(r"<passage>\n(.*)\n</passage>", prompt, re.DOTALL) or ""
        count = int(_find(r"Write (\d+) question", prompt) or 3)
        pairs = []
        for sentence in sentences(passage)[:count]:
            words = " ".join(sentence.split()[:4])
            question = f"What does {path} say about '{words}'?"
            if behaviour == "the_passage":
                question = f"What does the passage say about '{words}'?"
            quote = "This sentence was never written anywhere." if behaviour == "bad_quote" else sentence
            pairs.append({"question": question, "answer": sentence, "quote": quote})
            with self.lock:
                self.answers[question] = sentence
        named = {f"pair_{i}": pair for i, pair in enumerate(pairs, 1)}
        text = json.dumps(named if structured else pairs, indent=2)
        if behaviour == "fenced":
            return f"Sure! Here are the pairs:\n```json\n{text}\n```\nLet me know if you want more."
        return text


def _schema(response_format) -> dict | None:
    """The JSON schema a request's response_format asks for, in either shape, or None."""
    if not isinstance(response_format, dict):
        return None
    if response_format.get("type") == "json_schema":
        return (response_format.get("json_schema") or {}).get("schema")
    if response_format.get("type") == "json_object":
        return response_format.get("schema")
    return None


def _find(pattern: str, text: str, flags: int = 0) -> str | None:
    m = re.search(pattern, text, flags)
    return m.group(1) if m else None


def _invalid(body) -> tuple[str, str | None] | None:
    """What the real API says about a malformed request body, or None."""
    if not isinstance(body, dict):
        return "We could not parse the JSON body of your request.", None
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "you must provide a model parameter", "model"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array.", "messages"
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            return f"Invalid value for 'messages[{i}].role'.", f"messages[{i}].role"
        if "content" not in m or m["content"] is None:
            return f"Missing required parameter: 'messages[{i}].content'.", f"messages[{i}].content"
    for name in ("temperature", "max_tokens"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return f"Invalid type for '{name}': expected a number, but got {type(value).__name__}.", name
    return None


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 refuses a burst of new connections, as no real server does
    daemon_threads = True
    block_on_close = False  # a "slow" answer still sleeping must not hold up the test's teardown


def _handler(server: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects
        disable_nagle_algorithm = True  # headers and body go out as two writes; Nagle would hold the second ~40 ms

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            record = {"path": self.path, "headers": dict(self.headers), "start": time.monotonic(), "time": time.time(),
                      "prompt": None, "kind": None, "behaviour": None, "status": None}
            with server.lock:
                server.requests.append(record)
                server.in_flight += 1
                server.max_in_flight = max(server.max_in_flight, server.in_flight)
            try:
                if self.path.rstrip("/") == "/v1/files":
                    status, headers, payload = server.upload(self.headers, raw)
                elif self.path.rstrip("/") == "/v1/batches":
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        body = None
                    status, headers, payload = server.create_batch(body)
                elif self.path.rstrip("/") != "/v1/chat/completions":
                    status, headers, payload = 404, {}, error(f"Unknown request URL: POST {self.path}.")
                else:
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        body = None
                    record["body"] = body
                    status, headers, payload = server.respond(body, self.headers, record)
                record["status"] = status
                self._send(status, headers, payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (its timeout) before the answer came
            finally:
                record["end"] = time.monotonic()
                with server.lock:
                    server.in_flight -= 1

        def do_GET(self) -> None:
            record = {"path": self.path, "method": "GET", "time": time.time()}
            with server.lock:
                server.gets.append(record)
            status, headers, payload = server.get(self.path, self.headers)
            record["status"] = status
            self._send(status, headers, payload)

        def _send(self, status: int, headers: dict, payload: dict | bytes) -> None:
            binary = isinstance(payload, bytes)
            data = payload if binary else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream" if binary else "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    return Handler


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    with FakeOpenAI(delay=args.delay) as fake:
        print(fake.url, flush=True)
        threading.Event().wait()
