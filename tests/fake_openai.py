"""A real HTTP server speaking POST /v1/chat/completions, for tests and benchmarks of the teacher.

It validates requests as the real APIs do (400 with an OpenAI-style error body,
401 for a missing or wrong key) and answers like a teacher that read the
passage: each question names the file and each quote is a real sentence of the
passage. Tests steer it per request kind and prompt text:

    server.on("ALPHA", "429", "good")        first request mentioning ALPHA gets 429, later ones "good"
    server.on("BETA", "judge_no", kind="judge")

The last behaviour in a list sticks. It records every request it received.
Run on its own (`python tests/fake_openai.py --delay 0.2`) it prints its URL and serves until killed.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROLES = {"system", "user", "assistant", "tool", "developer"}
DEFAULTS = {"qa": "good", "judge": "judge_yes", "closed_book": "closed_guess"}


def error(message: str, type_: str = "invalid_request_error", code: str | None = None, param: str | None = None):
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def sentences(passage: str) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+|\n+", passage)
    return [p.strip() for p in parts if len(p.split()) >= 3]


class FakeOpenAI:
    def __init__(self, delay: float = 0.0, api_key: str | None = None, retry_after: str = "1",
                 slow_seconds: float = 2.0):
        self.delay = delay  # seconds before every answer
        self.api_key = api_key  # when set, requests must carry it
        self.retry_after = retry_after  # the Retry-After header sent with 429
        self.slow_seconds = slow_seconds  # how long "slow" waits before answering
        self.rules: list[tuple[str, str, list[str]]] = []  # (kind, text in the prompt, behaviours)
        self.requests: list[dict] = []
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
        if self.api_key is not None and headers.get("Authorization") != f"Bearer {self.api_key}":
            return 401, {}, error("Incorrect API key provided.", code="invalid_api_key")
        problem = _invalid(body)
        if problem:
            return 400, {}, error(problem[0], param=problem[1])
        prompt = "\n".join(m["content"] for m in body["messages"] if isinstance(m["content"], str))
        kind = "judge" if '"grounded"' in prompt else "qa" if "<passage>" in prompt else "closed_book"
        behaviour = self._behaviour(kind, prompt)
        record.update(prompt=prompt, kind=kind, behaviour=behaviour)
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
        content = self._content(kind, behaviour, prompt)
        return 200, {}, {
            "id": f"chatcmpl-fake-{len(self.requests)}", "object": "chat.completion", "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(content.split()),
                      "total_tokens": len(prompt.split()) + len(content.split())},
        }

    def _content(self, kind: str, behaviour: str, prompt: str) -> str:
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
        text = json.dumps(pairs, indent=2)
        if behaviour == "fenced":
            return f"Sure! Here are the pairs:\n```json\n{text}\n```\nLet me know if you want more."
        return text


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
                if self.path.rstrip("/") != "/v1/chat/completions":
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

        def _send(self, status: int, headers: dict, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
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
