"""Teacher generation against a real HTTP server (tests/fake_openai.py), not a mocked client."""

import email.utils
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from fake_openai import FakeOpenAI
from knowtune.examples.teacher import default_prompt, dry_run, generate
from knowtune.examples.teacher.cache import Reply, ReplyCache, load_replies
from knowtune.examples.teacher.prompts import render
from knowtune.config import ConfigError, JudgeConfig, TeacherConfig
from knowtune.records import Chunk, Document, stable_id, write_jsonl

DOC = Document(id="doc1", source="repo:/srv/lanterna", path="lanterna/inventory.py", kind="code", text="")
DOCS = {"doc1": DOC}


def chunk(marker: str) -> Chunk:
    """A chunk whose every sentence (and so every question the fake writes) carries `marker`."""
    text = (f"The {marker} lamp burns oil each night.\nKeepers refill the {marker} lamp at dusk. "
            f"A spare wick for the {marker} lamp is kept in the store.")
    return Chunk(id=stable_id("doc1", marker), document_id="doc1", text=text, n_tokens=30, span=(0, len(text)),
                 metadata={"path": DOC.path, "about": f"the {marker} lamp"})


def teacher(fake: FakeOpenAI, **overrides) -> TeacherConfig:
    settings = dict(base_url=fake.url, model="teacher-model", pairs_per_chunk=2, concurrency=4, timeout=0.5,
                    max_retries=2)
    return TeacherConfig(**{**settings, **overrides})


def sent_for(fake: FakeOpenAI, marker: str, kind: str = "qa", since: int = 0) -> int:
    return sum(1 for r in fake.chats[since:] if r["kind"] == kind and marker in r["prompt"])


def reasons(result, c: Chunk) -> list[str]:
    return [r["reason"] for r in result.rejected if r["chunk_id"] == c.id]


@pytest.fixture
def fake():
    with FakeOpenAI() as server:
        yield server


def test_good_replies_become_qa_examples_and_a_rerun_sends_nothing(fake, tmp_path):
    chunks = [chunk("ALPHA"), chunk("BETA")]
    calls = []
    result = generate(chunks, DOCS, teacher(fake), None, tmp_path,
                      progress=lambda done, total: calls.append((done, total)))

    assert result.rejected == [] and result.preference == []
    assert [e.provenance for e in result.examples] == [[chunks[0].id]] * 2 + [[chunks[1].id]] * 2
    first = result.examples[0]
    question, answer = first.messages
    assert question == {"role": "user", "content": "What does lanterna/inventory.py say about 'The ALPHA lamp burns'?"}
    assert answer == {"role": "assistant", "content": "The ALPHA lamp burns oil each night."}
    assert first.kind == "qa" and first.document_id == "doc1"
    assert first.id == stable_id("qa", "teacher", chunks[0].id, question["content"])
    assert first.metadata == {"source": DOC.source, "path": DOC.path, "rule": "teacher",
                              "quote": "The ALPHA lamp burns oil each night.", "model": "teacher-model",
                              "fact": stable_id(chunks[0].id, question["content"]), "phrasing": 0}
    for e in result.examples:
        assert e.metadata["quote"] in next(c.text for c in chunks if c.id == e.provenance[0])
    assert sorted(calls) == [(1, 2), (2, 2)]
    usage = result.usage
    assert (usage["requests"], usage["cached"], usage["retries"], usage["failures"]) == (2, 0, 0, 0)
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0 and usage["stopped_at_budget"] is False

    body = fake.chats[0]["body"]
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("teacher-model", 0.2, 1024)
    [message] = body["messages"]
    assert message["role"] == "user" and "Write 2 question-answer pairs" in message["content"]
    assert "Source: lanterna/inventory.py" in message["content"] and "About: the " in message["content"]

    again = generate(chunks, DOCS, teacher(fake), None, tmp_path)
    assert len(fake.chats) == 2 and len(fake.requests) == 3  # and the probe, sent once: its answer is cached
    assert again.examples == result.examples and again.usage["cached"] == 2 and again.usage["requests"] == 0


def test_each_kind_of_bad_reply_is_rejected_with_its_reason(fake, tmp_path):
    fake.on("MALFORMED", "malformed")
    fake.on("FENCED", "fenced")
    fake.on("BADQUOTE", "bad_quote")
    fake.on("VAGUE", "the_passage")
    chunks = [chunk(m) for m in ("MALFORMED", "FENCED", "BADQUOTE", "VAGUE")]
    result = generate(chunks, DOCS, teacher(fake), None, tmp_path)

    assert reasons(result, chunks[0]) == ["not JSON after repairs"]
    assert reasons(result, chunks[1]) == [] and len([e for e in result.examples if e.provenance == [chunks[1].id]]) == 2
    assert reasons(result, chunks[2]) == ["quote not in the chunk"] * 2
    assert reasons(result, chunks[3]) == ["question says 'the passage'"] * 2
    vague = [r for r in result.rejected if r["chunk_id"] == chunks[3].id]
    assert vague[0]["question"] == "What does the passage say about 'The VAGUE lamp burns'?"
    assert "question" not in result.rejected[0]  # a whole reply thrown away has no question
    assert len(result.examples) == 2


def test_429_is_retried_after_the_wait_the_server_asks_for(fake, tmp_path):
    fake.on("ALPHA", "429", "good")
    fake.retry_after = "1"
    start = time.monotonic()
    result = generate([chunk("ALPHA")], DOCS, teacher(fake), None, tmp_path / "seconds")
    assert time.monotonic() - start >= 1.0
    first, second = fake.chats
    assert (first["status"], second["status"]) == (429, 200)
    assert second["start"] - first["end"] >= 1.0
    assert (result.usage["requests"], result.usage["retries"], result.usage["failures"]) == (1, 1, 0)
    assert len(result.examples) == 2

    fake.on("BETA", "429", "good")
    when = int(time.time()) + 2  # an HTTP date has whole seconds: 1 to 2 s from now
    fake.retry_after = email.utils.formatdate(when, usegmt=True)
    result = generate([chunk("BETA")], DOCS, teacher(fake), None, tmp_path / "date")
    assert fake.chats[2]["status"] == 429 and fake.chats[3]["time"] >= when - 0.01
    assert result.usage["retries"] == 1 and len(result.examples) == 2


def test_500s_and_timeouts_are_retried_exactly_max_retries_times(tmp_path):
    with FakeOpenAI(slow_seconds=1.0) as fake:
        fake.on("FLAKY", "500", "500", "good")
        fake.on("SLOWONCE", "slow", "good")
        fake.on("DOWN", "500")
        fake.on("STUCK", "slow")
        chunks = [chunk(m) for m in ("FLAKY", "SLOWONCE", "DOWN", "STUCK")]
        result = generate(chunks, DOCS, teacher(fake, max_retries=2, timeout=0.5), None, tmp_path)

        assert [sent_for(fake, m) for m in ("FLAKY", "SLOWONCE", "DOWN", "STUCK")] == [3, 2, 3, 3]
    assert result.usage["retries"] == 2 + 1 + 2 + 2
    assert result.usage["requests"] == 4 and result.usage["failures"] == 2
    assert reasons(result, chunks[0]) == [] and reasons(result, chunks[1]) == []
    assert reasons(result, chunks[2]) == [
        "HTTP 500: The server had an error while processing your request. (3 attempts)"]
    assert reasons(result, chunks[3]) == ["timed out after 0.5 s (3 attempts)"]
    assert len(result.examples) == 4


def test_a_server_that_is_not_there_is_retried_then_reported(tmp_path):
    with FakeOpenAI() as gone:
        url = gone.url  # a port that was just open and now refuses connections
    result = generate([chunk("ALPHA")], DOCS, TeacherConfig(base_url=url, model="m", max_retries=1, timeout=0.5),
                      None, tmp_path)
    [row] = result.rejected
    assert row["reason"].startswith("connection failed: ") and row["reason"].endswith("(2 attempts)")
    assert (result.usage["requests"], result.usage["retries"], result.usage["failures"]) == (1, 1, 1)
    assert generate([], DOCS, TeacherConfig(base_url=url, model="m"), None, tmp_path).usage["requests"] == 0


def test_a_400_is_not_retried_and_keeps_the_servers_message(fake, tmp_path):
    fake.on("LONG", "too_long")
    result = generate([chunk("LONG")], DOCS, teacher(fake), None, tmp_path / "a")
    assert reasons(result, chunk("LONG")) == ["HTTP 400: This model's maximum context length is 8192 tokens."]
    # a request the server finds malformed (no model named), refused by its own validation
    nameless = generate([chunk("NAMELESS")], DOCS, teacher(fake, model=""), None, tmp_path / "b")
    assert reasons(nameless, chunk("NAMELESS")) == ["HTTP 400: you must provide a model parameter"]
    assert len(fake.chats) == 2
    for r in (result, nameless):
        assert (r.usage["requests"], r.usage["retries"], r.usage["failures"]) == (1, 0, 1)


def test_the_budget_stops_new_requests_and_a_rerun_gets_no_second_budget(fake, tmp_path):
    probe = generate([chunk("PROBE00")], DOCS, teacher(fake), None, tmp_path / "probe")
    per_request = probe.usage["prompt_tokens"] + probe.usage["completion_tokens"]
    chunks = [chunk(f"LAMP{i:03d}") for i in range(10)]  # same number of words each: same tokens a request
    budget = 3 * per_request
    cfg = teacher(fake, concurrency=2, budget_tokens=budget)
    before = len(fake.chats)
    result = generate(chunks, DOCS, cfg, None, tmp_path / "run")

    # 2 start at once; the 3rd and 4th start when 1 and 2 tokens' worth are used; the 3rd reply reaches the budget
    assert len(fake.chats) - before == 4 and result.usage["requests"] == 4
    assert result.usage["stopped_at_budget"] is True
    assert result.usage["prompt_tokens"] + result.usage["completion_tokens"] == 4 * per_request
    unsent = [r["chunk_id"] for r in result.rejected]
    assert all(r["reason"] == "budget reached" for r in result.rejected)
    assert unsent == [c.id for c in chunks[4:]]  # chunks are started in order
    assert {e.provenance[0] for e in result.examples}.isdisjoint(unsent) and len(result.examples) == 8

    rerun = generate(chunks, DOCS, cfg, None, tmp_path / "run")
    assert rerun.usage["requests"] == 0 and rerun.usage["cached"] == 4 and rerun.usage["stopped_at_budget"] is True
    more = generate(chunks, DOCS, teacher(fake, concurrency=2, budget_tokens=100 * per_request), None, tmp_path / "run")
    assert more.usage["requests"] == 6 and not more.usage["stopped_at_budget"] and len(more.examples) == 20


def test_requests_overlap_up_to_the_concurrency(tmp_path):
    with FakeOpenAI(delay=0.2) as fake:
        chunks = [chunk(f"LAMP{i:03d}") for i in range(12)]
        result = generate(chunks, DOCS, teacher(fake, concurrency=4), None, tmp_path)
    assert 1 < fake.max_in_flight <= 4
    assert result.usage["seconds"] < 12 * 0.2 / 2  # well under the sequential time


def test_the_judge_keeps_and_drops_pairs_with_its_reasons(fake, tmp_path):
    fake.on("DENIED", "judge_no", kind="judge")
    fake.on("MUDDLED", "judge_garbage", kind="judge")
    chunks = [chunk("KEPT"), chunk("DENIED"), chunk("MUDDLED")]
    judge = JudgeConfig(model="judge-model", max_tokens=64)
    result = generate(chunks, DOCS, teacher(fake), judge, tmp_path)

    assert {e.provenance[0] for e in result.examples} == {chunks[0].id} and len(result.examples) == 2
    assert all(e.metadata["judge_reason"] == "the answer is stated in the source" for e in result.examples)
    assert reasons(result, chunks[1]) == ["judge: not grounded: the answer adds a claim"] * 2
    assert reasons(result, chunks[2]) == ["judge reply not understood"] * 2
    judged = [r for r in fake.chats if r["kind"] == "judge"]
    assert len(judged) == 6
    assert {(r["body"]["model"], r["body"]["temperature"], r["body"]["max_tokens"]) for r in judged} == {
        ("judge-model", 0.0, 64)}
    assert any("Answer: The KEPT lamp burns oil each night." in r["prompt"] for r in judged)
    assert len(load_replies(tmp_path / "judge.jsonl")) == 6


def test_preference_pairs_set_the_grounded_answer_against_the_closed_book_one(fake, tmp_path):
    fake.on("ECHOED", "closed_same", kind="closed_book")
    chunks = [chunk("PLAIN"), chunk("ECHOED")]
    result = generate(chunks, DOCS, teacher(fake), None, tmp_path, preference=True)

    assert len(result.examples) == 4  # preference pairs skipped or not, the qa pairs stay
    assert len(result.preference) == 2
    pref = result.preference[0]
    question = "What does lanterna/inventory.py say about 'The PLAIN lamp burns'?"
    assert pref.kind == "preference" and pref.provenance == [chunks[0].id]
    assert pref.id == stable_id("preference", "teacher", chunks[0].id, question)
    assert pref.prompt == [{"role": "user", "content": question}]
    assert pref.chosen == [{"role": "assistant", "content": "The PLAIN lamp burns oil each night."}]
    assert pref.rejected == [
        {"role": "assistant", "content": "I believe it is configured in a settings file somewhere."}]
    same = "no preference pair: the closed-book answer is the same as the grounded one"
    assert reasons(result, chunks[1]) == [same] * 2
    closed = [r["prompt"] for r in fake.chats if r["kind"] == "closed_book"]
    assert len(closed) == 4 and not any("lamp burns oil" in p or "<passage>" in p for p in closed)
    assert any(p.rstrip().endswith(f"Question: {question}") for p in closed)


def test_dry_run_counts_prices_and_sees_the_cache(fake, tmp_path):
    chunks = [chunk("ALPHA"), chunk("BETA"), chunk("GAMMA")]
    cfg = teacher(fake, max_tokens=100, price_per_million_input=2.0, price_per_million_output=10.0)
    words = lambda text: len(text.split())  # noqa: E731
    prompt_tokens = sum(
        words(render(default_prompt("qa"), pairs=2, path=DOC.path, about=c.metadata["about"], passage=c.text))
        for c in chunks)
    plan = dry_run(chunks, DOCS, cfg, words, tmp_path)
    full = (prompt_tokens * 2 + 300 * 10) / 1e6
    assert plan == {"requests": 3, "cached": 0, "to_send": 3, "prompt_tokens": prompt_tokens,
                    "max_completion_tokens": 300, "max_cost": round(full, 6), "max_cost_to_send": round(full, 6),
                    "max_cost_batch": round(full * 0.5, 6), "max_cost_to_send_batch": round(full * 0.5, 6),
                    "pays": "one by one", "budget_tokens": None}
    assert fake.requests == []  # not even the probe
    batch = dry_run(chunks, DOCS, cfg.model_copy(update={"batch": True, "batch_discount": 0.6}), words, tmp_path)
    assert batch["pays"] == "batch" and batch["max_cost_batch"] == round(full * 0.4, 6)

    generate(chunks[:2], DOCS, cfg, None, tmp_path)
    plan = dry_run(chunks, DOCS, cfg, words, tmp_path)
    last = words(render(default_prompt("qa"), pairs=2, path=DOC.path, about="the GAMMA lamp", passage=chunks[2].text))
    assert (plan["cached"], plan["to_send"]) == (2, 1)  # answered through the schema path: still seen
    assert plan["max_cost_to_send"] == round((last * 2 + 100 * 10) / 1e6, 6)
    assert plan["max_cost_to_send_batch"] == round((last * 2 + 100 * 10) * 0.5 / 1e6, 6)


KILLED_RUN = """
import json, sys
from pathlib import Path
from knowtune.examples.teacher import generate
from knowtune.config import TeacherConfig
from knowtune.records import Chunk, read_jsonl
from test_teacher import DOCS
chunks = list(read_jsonl(Path(sys.argv[1]), Chunk))
generate(chunks, DOCS, TeacherConfig.model_validate_json(sys.argv[2]), None, Path(sys.argv[3]))
"""


def test_a_run_killed_midway_resumes_without_asking_again(tmp_path):
    chunks = [chunk(f"LAMP{i:03d}") for i in range(16)]
    write_jsonl(tmp_path / "chunks.jsonl", chunks)
    cache_file = tmp_path / "cache" / "qa.jsonl"
    with FakeOpenAI(delay=0.15) as fake:
        cfg = teacher(fake, concurrency=2, timeout=5)
        here = Path(__file__)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here.parent), str(here.parents[1])])}
        proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(tmp_path / "chunks.jsonl"),
                                 cfg.model_dump_json(), str(tmp_path / "cache")], env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            if cache_file.exists() and cache_file.read_bytes().count(b"\n") >= 5:
                break
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
        lines = [json.loads(line) for line in cache_file.read_text().splitlines()]  # fsynced: whole lines
        answered = {line["label"] for line in lines}
        assert 5 <= len(answered) < 16
        sent_before_kill = len(fake.chats)

        result = generate(chunks, DOCS, cfg, None, tmp_path / "cache")

        for c in chunks:
            marker = c.text.split()[1]
            if c.id in answered:
                assert sent_for(fake, marker, since=sent_before_kill) == 0, f"{marker} was answered, yet asked again"
            else:
                assert sent_for(fake, marker, since=sent_before_kill) == 1
    assert {e.provenance[0] for e in result.examples} == {c.id for c in chunks}
    assert result.usage["cached"] == len(answered) and result.usage["requests"] == 16 - len(answered)
    assert result.rejected == []


def test_the_cache_drops_a_torn_last_line_and_appends_after_it(tmp_path):
    path = tmp_path / "qa.jsonl"
    cache = ReplyCache(path)
    cache.add("k1", "c1", Reply("[]", 10, 2, "stop"))
    cache.close()
    with path.open("ab") as fh:
        fh.write(b'{"key": "k2", "label": "c2", "cont')  # what a kill mid-write leaves
    cache = ReplyCache(path)
    assert set(cache.replies) == {"k1"}
    cache.add("k3", "c3", Reply("[1]", 11, 3, None))
    cache.close()
    assert [json.loads(line)["key"] for line in path.read_text().splitlines()] == ["k1", "k3"]
    assert load_replies(path)["k3"] == Reply("[1]", 11, 3, None)


def test_the_fake_server_refuses_malformed_requests_as_the_api_does(tmp_path):
    with FakeOpenAI(api_key="sk-right") as fake:
        url = fake.url + "/chat/completions"
        ok = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        auth = {"Authorization": "Bearer sk-right"}
        bad = [
            ({"messages": ok["messages"]}, "model"),
            ({"model": "m"}, "messages"),
            ({"model": "m", "messages": []}, "messages"),
            ({"model": "m", "messages": [{"content": "hi"}]}, "messages[0].role"),
            ({"model": "m", "messages": [{"role": "user"}]}, "messages[0].content"),
            ({**ok, "temperature": "hot"}, "temperature"),
        ]
        for body, param in bad:
            response = httpx.post(url, json=body, headers=auth)
            assert response.status_code == 400 and response.json()["error"]["param"] == param
            assert response.json()["error"]["type"] == "invalid_request_error"
        assert httpx.post(url, json=ok).status_code == 401
        assert httpx.post(url, json=ok, headers={"Authorization": "Bearer sk-wrong"}).status_code == 401
        reply = httpx.post(url, json=ok, headers=auth).json()
        assert reply["choices"][0]["message"]["role"] == "assistant" and reply["usage"]["prompt_tokens"] == 1


def test_keys_come_from_the_named_environment_variable(tmp_path, monkeypatch):
    with FakeOpenAI(api_key="sk-right") as fake:
        monkeypatch.setenv("KT_TEACHER_KEY", "sk-right")
        result = generate([chunk("ALPHA")], DOCS, teacher(fake, api_key_env="KT_TEACHER_KEY"), None, tmp_path / "a")
        assert len(result.examples) == 2
        monkeypatch.setenv("KT_TEACHER_KEY", "sk-wrong")
        result = generate([chunk("BETA")], DOCS, teacher(fake, api_key_env="KT_TEACHER_KEY"), None, tmp_path / "b")
        assert reasons(result, chunk("BETA")) == ["HTTP 401: Incorrect API key provided."]
        assert result.usage["retries"] == 0
        monkeypatch.delenv("KT_TEACHER_KEY")
        with pytest.raises(ConfigError, match="KT_TEACHER_KEY is not set"):
            generate([chunk("BETA")], DOCS, teacher(fake, api_key_env="KT_TEACHER_KEY"), None, tmp_path / "c")


def test_an_edited_prompt_file_is_what_gets_sent(fake, tmp_path):
    prompt = tmp_path / "qa.txt"
    prompt.write_text(
        'Source: {path}\n<passage>\n{passage}\n</passage>\nWrite {pairs} questions about {about}, as JSON {"x": 1}.')
    generate([chunk("ALPHA")], DOCS, teacher(fake, prompt=prompt), None, tmp_path / "cache")
    sent = fake.chats[0]["prompt"]
    assert sent.startswith("Source: lanterna/inventory.py\n<passage>\nThe ALPHA lamp")
    assert sent.endswith('Write 2 questions about the ALPHA lamp, as JSON {"x": 1}.')
    prompt.write_text("Write {pairs} questions.")
    with pytest.raises(ConfigError, match="missing placeholder {passage}"):
        generate([chunk("ALPHA")], DOCS, teacher(fake, prompt=prompt), None, tmp_path / "cache")
