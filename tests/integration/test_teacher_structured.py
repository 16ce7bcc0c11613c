"""Structured output against a real HTTP server (tests/fake_openai.py): the probe, the schema path, the
fallback to the prompt path for servers that ignore or refuse response_format, and teacher paraphrases."""

from fake_openai import FakeOpenAI
from knowtune.config import JudgeConfig, TeacherConfig
from knowtune.examples.teacher import generate
from knowtune.examples.teacher.structured import VERDICT_SCHEMA, pairs_schema, questions_schema
from knowtune.records import stable_id
from test_teacher import DOCS, chunk, reasons


def teacher(fake: FakeOpenAI, **overrides) -> TeacherConfig:
    settings = dict(base_url=fake.url, model="teacher-model", pairs_per_chunk=2, concurrency=4, timeout=2,
                    max_retries=2)
    return TeacherConfig(**{**settings, **overrides})


def probes(fake: FakeOpenAI) -> list[dict]:
    return [r for r in fake.requests if r["kind"] == "probe"]


def of_kind(fake: FakeOpenAI, kind: str) -> list[dict]:
    return [r for r in fake.chats if r["kind"] == kind]


def test_a_server_that_honours_the_schema_gets_it_on_every_step_and_is_probed_once(tmp_path):
    log: list[str] = []
    with FakeOpenAI() as fake:
        chunks = [chunk("ALPHA"), chunk("BETA")]
        result = generate(chunks, DOCS, teacher(fake), JudgeConfig(), tmp_path, log=log.append)

        assert len(result.examples) == 4 and result.rejected == []
        assert log == [f"teacher teacher-model at {fake.url}: schema path (response_format json_schema)",
                       f"judge teacher-model at {fake.url}: schema path (response_format json_schema)"]
        assert result.usage["teacher_path"] == result.usage["judge_path"] == "schema path (response_format json_schema)"
        assert len(probes(fake)) == 1  # the judge shares the teacher's server and model: one probe for both
        for kind, schema, name in (("qa", pairs_schema(2), "qa"), ("judge", VERDICT_SCHEMA, "judge")):
            sent = of_kind(fake, kind)
            assert sent and all(r["body"]["response_format"] == {
                "type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}} for r in sent)
        assert (result.usage["qa_schema"], result.usage["judge_schema"]) == (2, 4)

        before = len(fake.requests)
        again = generate(chunks, DOCS, teacher(fake), JudgeConfig(), tmp_path, log=log.append)
        assert len(fake.requests) == before  # no probe and no request: all cached
        assert again.examples == result.examples and log[2:] == log[:2]


def test_a_server_that_ignores_response_format_falls_back_to_the_prompt_path(tmp_path):
    log: list[str] = []
    with FakeOpenAI(response_format="ignore") as fake:
        fake.on("FENCED", "fenced")
        fake.on("MALFORMED", "malformed")
        chunks = [chunk("ALPHA"), chunk("FENCED"), chunk("MALFORMED")]
        result = generate(chunks, DOCS, teacher(fake), JudgeConfig(), tmp_path, log=log.append)

        path = "prompt path (json_schema ignored; json_object ignored)"
        assert result.usage["teacher_path"] == result.usage["judge_path"] == path
        assert log[0] == f"teacher teacher-model at {fake.url}: {path}"
        assert len(probes(fake)) == 2  # each shape tried once
        assert all("response_format" not in r["body"] for r in fake.chats)  # the steps ask as before
        # the prompt path's repairs and reasons, as before structured output
        assert {e.provenance[0] for e in result.examples} == {chunks[0].id, chunks[1].id}
        assert reasons(result, chunks[2]) == ["not JSON after repairs"]
        assert result.usage["qa_prompt"] == 1 and result.usage["qa_prompt_repaired"] == 1
        assert result.usage["qa_prompt_unparsed"] == 1 and result.usage["judge_prompt"] == 4

        before = len(fake.requests)
        generate(chunks, DOCS, teacher(fake), JudgeConfig(), tmp_path, log=log.append)
        assert len(fake.requests) == before  # what the probes found is cached too


def test_a_server_that_takes_only_json_object_is_asked_in_that_shape(tmp_path):
    # llama-cpp-python's server: "json_schema" answered with a 500 naming response_format, which is not retried
    with FakeOpenAI(response_format="json_object_only") as fake:
        result = generate([chunk("ALPHA")], DOCS, teacher(fake), None, tmp_path)
        assert result.usage["teacher_path"] == "schema path (response_format json_object)"
        assert [r["status"] for r in probes(fake)] == [500, 200, 200]  # json_schema, without one, json_object
        [qa] = of_kind(fake, "qa")
        assert qa["body"]["response_format"] == {"type": "json_object", "schema": pairs_schema(2)}
        assert len(result.examples) == 2 and result.usage["retries"] == 0

        before = len(fake.requests)
        assert generate([chunk("ALPHA")], DOCS, teacher(fake), None, tmp_path).usage["cached"] == 1
        assert len(fake.requests) == before


def test_a_server_that_refuses_response_format_falls_back_and_says_why(tmp_path):
    with FakeOpenAI(response_format="refuse") as fake:
        result = generate([chunk("ALPHA")], DOCS, teacher(fake), None, tmp_path)
        refused = "refused (HTTP 400: response_format is not supported by this server.)"
        assert result.usage["teacher_path"] == f"prompt path (json_schema {refused}; json_object {refused})"
        assert len(result.examples) == 2 and "response_format" not in of_kind(fake, "qa")[0]["body"]
        before = len(fake.requests)
        generate([chunk("ALPHA")], DOCS, teacher(fake), None, tmp_path)
        assert len(fake.requests) == before


def test_a_refusal_that_is_not_about_the_format_is_not_remembered(tmp_path, monkeypatch):
    with FakeOpenAI(api_key="sk-right") as fake:
        monkeypatch.setenv("KT_KEY", "sk-wrong")
        result = generate([chunk("ALPHA")], DOCS, teacher(fake, api_key_env="KT_KEY"), None, tmp_path)
        failed = "prompt path (the probe itself failed: HTTP 401: Incorrect API key provided.)"
        assert result.usage["teacher_path"] == failed
        assert reasons(result, chunk("ALPHA")) == ["HTTP 401: Incorrect API key provided."]
        monkeypatch.setenv("KT_KEY", "sk-right")  # the key fixed: the server is probed again and takes the schema
        result = generate([chunk("ALPHA")], DOCS, teacher(fake, api_key_env="KT_KEY"), None, tmp_path)
        assert result.usage["teacher_path"] == "schema path (response_format json_schema)"
        assert len(result.examples) == 2


def test_structured_off_sends_neither_probe_nor_schema(tmp_path):
    with FakeOpenAI() as fake:
        result = generate([chunk("ALPHA")], DOCS, teacher(fake, structured=False), None, tmp_path)
        assert probes(fake) == [] and "response_format" not in of_kind(fake, "qa")[0]["body"]
        assert result.usage["teacher_path"] == "prompt path (teacher.structured is off)"
        assert len(result.examples) == 2


def test_paraphrases_reword_each_kept_question_into_more_examples_of_the_same_fact(tmp_path):
    with FakeOpenAI() as fake:
        fake.on("DENIED", "judge_no", kind="judge")
        chunks = [chunk("ALPHA"), chunk("DENIED")]
        cfg = teacher(fake, paraphrases=2)
        result = generate(chunks, DOCS, cfg, JudgeConfig(), tmp_path)

        reworded = of_kind(fake, "paraphrase")
        assert len(reworded) == 2  # one request per kept pair; the judge's rejects are not reworded
        assert all(r["body"]["response_format"]["json_schema"]["schema"] == questions_schema(2) for r in reworded)
        assert all("in 2 different ways" in r["prompt"] for r in reworded)
        assert len(result.examples) == 2 * 3 and {e.provenance[0] for e in result.examples} == {chunks[0].id}
        first = "What does lanterna/inventory.py say about 'The ALPHA lamp burns'?"
        group = [e for e in result.examples if e.metadata["fact"] == stable_id(chunks[0].id, first)]
        assert [e.metadata["phrasing"] for e in group] == [0, 1, 2]
        assert [e.messages[0]["content"] for e in group] == [
            first, "Could you tell me: what does lanterna/inventory.py say about 'The ALPHA lamp burns'?",
            "What does lanterna/inventory.py say about 'The ALPHA lamp burns', according to the sources?"]
        assert {e.messages[1]["content"] for e in group} == {"The ALPHA lamp burns oil each night."}
        assert len({e.id for e in result.examples}) == 6
        assert {e.metadata["quote"] for e in group} == {"The ALPHA lamp burns oil each night."}

        before = len(fake.requests)
        again = generate(chunks, DOCS, cfg, JudgeConfig(), tmp_path)
        assert len(fake.requests) == before and again.examples == result.examples


def test_rewordings_that_are_no_new_question_are_rejected_with_their_reason(tmp_path):
    with FakeOpenAI(response_format="ignore") as fake:  # the prompt path: nothing constrains the reply
        fake.on("BADWORDS", "reword_bad", kind="paraphrase")
        c = chunk("BADWORDS")
        result = generate([c], DOCS, teacher(fake, pairs_per_chunk=1, paraphrases=3), None, tmp_path)

    question = "What does lanterna/inventory.py say about 'The BADWORDS lamp burns'?"
    assert reasons(result, c) == ["rewording: repeats the question", "rewording: not a question",
                                  "rewording: says 'the passage'", "rewording: repeats another question"]
    assert [e.messages[0]["content"] for e in result.examples] == [
        question, "Could you tell me: what does lanterna/inventory.py say about 'The BADWORDS lamp burns'?"]
    assert [e.metadata["phrasing"] for e in result.examples] == [0, 1]
    rejected = [r["question"] for r in result.rejected]
    assert rejected[1] == "Tell me about the lamp."


def test_a_failed_rewording_request_keeps_the_original_pair(tmp_path):
    with FakeOpenAI() as fake:
        fake.on("ALPHA", "500", kind="paraphrase")
        result = generate([chunk("ALPHA")], DOCS, teacher(fake, paraphrases=1, max_retries=0), None, tmp_path)
    assert [e.metadata["phrasing"] for e in result.examples] == [0, 0]
    assert reasons(result, chunk("ALPHA")) == [
        "no rewordings: rewording request failed: HTTP 500: The server had an error while processing your "
        "request. (1 attempt)"] * 2
