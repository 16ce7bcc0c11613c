"""teacher.batch against a fake Batch API on 127.0.0.1 (tests/fake_openai.py): files, batches, status polling,
results into the reply cache, and runs killed while a batch is pending or being created."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fake_openai import FakeOpenAI
from knowtune.config import JudgeConfig, TeacherConfig
from knowtune.examples.teacher import generate
from knowtune.records import write_jsonl
from test_teacher import DOCS, KILLED_RUN, chunk, reasons

HERE = Path(__file__)


def teacher(fake: FakeOpenAI, **overrides) -> TeacherConfig:
    settings = dict(base_url=fake.url, model="teacher-model", pairs_per_chunk=2, timeout=5, max_retries=1,
                    batch=True, batch_poll_seconds=0.01)
    return TeacherConfig(**{**settings, **overrides})


def uploads(fake: FakeOpenAI) -> list[dict]:
    return [f for f in fake.files.values() if f["purpose"] == "batch"]


def test_requests_go_as_batches_and_their_results_fill_the_cache(tmp_path):
    log: list[str] = []
    with FakeOpenAI() as fake:
        chunks = [chunk("ALPHA"), chunk("BETA")]
        cfg = teacher(fake, paraphrases=1)
        result = generate(chunks, DOCS, cfg, JudgeConfig(model="judge-model"), tmp_path, preference=True,
                          log=log.append)

        # pairs in the first batch; rewordings and closed-book answers of the judged pairs in the second
        assert len(fake.batches) == 2 and len(uploads(fake)) == 2
        first, second = ([json.loads(line) for line in f["data"].decode().splitlines()] for f in uploads(fake))
        assert len(first) == 2 and len(second) == 4 + 4
        line = first[0]
        assert (line["method"], line["url"]) == ("POST", "/v1/chat/completions") and line["custom_id"] == "qa-0"
        assert line["body"]["model"] == "teacher-model" and line["body"]["response_format"]["type"] == "json_schema"
        assert {b["endpoint"] for b in fake.batches.values()} == {"/v1/chat/completions"}
        assert {b["completion_window"] for b in fake.batches.values()} == {"24h"}
        assert {b["status"] for b in fake.batches.values()} == {"completed"}
        # the judge (a model of its own) is asked one by one, between the batches
        assert {r["path"] for r in fake.chats if r["kind"] == "judge"} == {"/v1/chat/completions"}
        assert all(r["path"].startswith("batch:") for r in fake.chats if r["kind"] != "judge")

        assert len(result.examples) == 2 * 2 * 2 and len(result.preference) == 4 and result.rejected == []
        assert result.usage["requests"] == 2 + 4 + 4 + 4 and result.usage["cached"] == 0
        batch_id = next(iter(fake.batches))
        assert [m for m in log if m.startswith(f"teacher batch {batch_id}")] == [
            f"teacher batch {batch_id}: submitted, 2 requests; polling every 0.01 s",
            f"teacher batch {batch_id}: validating (0 of 2 answered)",
            f"teacher batch {batch_id}: in_progress (0 of 2 answered)",
            f"teacher batch {batch_id}: finalizing (0 of 2 answered)",
            f"teacher batch {batch_id}: completed (2 of 2 answered)"]
        assert not (tmp_path / "batch.json").exists()

        before = (len(fake.requests), len(fake.files), len(fake.batches))
        again = generate(chunks, DOCS, cfg, JudgeConfig(model="judge-model"), tmp_path, preference=True)
        assert (len(fake.requests), len(fake.files), len(fake.batches)) == before
        assert again.examples == result.examples and again.preference == result.preference
        assert again.usage["requests"] == 0 and again.usage["cached"] == 14


def test_a_request_the_batch_could_not_answer_is_rejected_and_asked_again_next_run(tmp_path):
    with FakeOpenAI() as fake:
        fake.on("LONG", "too_long", "good")
        chunks = [chunk("ALPHA"), chunk("LONG")]
        result = generate(chunks, DOCS, teacher(fake), None, tmp_path)
        assert reasons(result, chunks[1]) == ["batch: HTTP 400: This model's maximum context length is 8192 tokens."]
        assert len(result.examples) == 2 and len(fake.batches) == 1 and result.usage["failures"] == 1

        again = generate(chunks, DOCS, teacher(fake), None, tmp_path)
        assert len(fake.batches) == 2 and len(again.examples) == 4 and again.rejected == []
        [last] = [b for b in fake.batches.values() if b["id"] != next(iter(fake.batches))]
        assert last["request_counts"]["total"] == 1  # only the one not answered


def _start(tmp_path: Path, cfg: TeacherConfig, chunks) -> subprocess.Popen:
    write_jsonl(tmp_path / "chunks.jsonl", chunks)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE.parents[1])])}
    return subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(tmp_path / "chunks.jsonl"), cfg.model_dump_json(),
                             str(tmp_path / "cache")], env=env, stdout=subprocess.DEVNULL)


def _kill_when(proc: subprocess.Popen, ready) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and not ready():
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL


def test_a_run_killed_while_its_batch_is_pending_picks_it_up_without_resubmitting(tmp_path):
    chunks = [chunk(f"LAMP{i:03d}") for i in range(6)]
    state_file = tmp_path / "cache" / "batch.json"
    with FakeOpenAI() as fake:
        fake.hold_batches = True  # the batch stays in_progress: the run polls until killed
        cfg = teacher(fake)
        proc = _start(tmp_path, cfg, chunks)
        _kill_when(proc, lambda: len(fake.gets) >= 5)
        assert len(fake.batches) == 1 and json.loads(state_file.read_text())["state"] == "submitted"
        [batch] = fake.batches.values()
        assert batch["status"] == "in_progress" and not any(r["kind"] == "qa" for r in fake.chats)

        fake.hold_batches = False  # the provider finishes it while no run is there
        log: list[str] = []
        result = generate(chunks, DOCS, cfg, None, tmp_path / "cache", log=log.append)

        assert len(fake.batches) == 1 and len(uploads(fake)) == 1  # picked up, not submitted again
        assert log[1] == "teacher batch: resuming the batch an earlier run left (submitted)"
        qa = [r for r in fake.chats if r["kind"] == "qa"]
        assert sorted(r["prompt"].split("The ")[1].split()[0] for r in qa) == [f"LAMP{i:03d}" for i in range(6)]
        assert len(result.examples) == 12 and result.rejected == [] and not state_file.exists()


def test_a_run_killed_between_creating_the_batch_and_hearing_back_adopts_that_batch(tmp_path):
    chunks = [chunk("ALPHA"), chunk("BETA")]
    state_file = tmp_path / "cache" / "batch.json"
    with FakeOpenAI() as fake:
        fake.create_delay = 30.0  # the batch exists at once; the answer to batches.create is late
        cfg = teacher(fake)
        proc = _start(tmp_path, cfg, chunks)
        _kill_when(proc, lambda: len(fake.batches) == 1)
        state = json.loads(state_file.read_text())
        assert state["state"] == "uploaded" and "batch_id" not in state  # the run never learnt the batch's id

        fake.create_delay = 0.0
        result = generate(chunks, DOCS, cfg, None, tmp_path / "cache")
        assert len(fake.batches) == 1 and len(uploads(fake)) == 1  # found by its input file, not made again
        assert len(result.examples) == 4 and not state_file.exists()
