import hashlib
import json

import pytest

from knowtune.examples.teacher.cache import Reply, ReplyCache, load_replies, request_key
from knowtune.examples.teacher.paraphrase import check_rewordings
from knowtune.examples.teacher.parse import check_pairs, question_key
from knowtune.examples.teacher.structured import (PROBE_SCHEMA, VERDICT_SCHEMA, StructuredReply, pairs_schema,
                                                  probe_passed, questions_schema, response_format)

# What every server that enforces a schema takes (OpenAI strict mode is the narrowest): no counts, lengths
# or patterns, every property required, none other allowed.
COMMON_SUBSET = {"type", "properties", "required", "additionalProperties", "items", "enum"}


def walk(schema: dict):
    yield schema
    for sub in schema.get("properties", {}).values():
        yield from walk(sub)
    if "items" in schema:
        yield from walk(schema["items"])


@pytest.mark.parametrize("schema", [pairs_schema(3), questions_schema(2), VERDICT_SCHEMA, PROBE_SCHEMA])
def test_every_schema_keeps_to_what_strict_servers_take(schema):
    assert schema["type"] == "object"  # OpenAI refuses any other root
    for node in walk(schema):
        assert set(node) <= COMMON_SUBSET, set(node) - COMMON_SUBSET
        if node["type"] == "object":
            assert node["additionalProperties"] is False and node["required"] == list(node["properties"])


def test_the_two_response_format_shapes():
    schema = pairs_schema(1)
    assert response_format("json_schema", "qa", schema) == {
        "type": "json_schema", "json_schema": {"name": "qa", "schema": schema, "strict": True}}
    assert response_format("json_object", "qa", schema) == {"type": "json_object", "schema": schema}
    with pytest.raises(ValueError, match="unknown response_format form"):
        response_format("grammar", "qa", schema)


def test_the_probe_passes_only_on_the_one_object_its_schema_allows():
    assert probe_passed('{"code": "kt-probe-7f3a", "ok": [true]}')
    assert probe_passed('{ "code" : "kt-probe-7f3a", "ok": []}')  # llama.cpp's spacing
    for content in ("Hello there!", '{"code": "hello", "ok": [true]}', '{"code": "kt-probe-7f3a"}',
                    '{"code": "kt-probe-7f3a", "ok": [true], "more": 1}', '{"code": "kt-probe-7f3a", "ok": ["yes"]}',
                    '```json\n{"code": "kt-probe-7f3a", "ok": [true]}\n```'):
        assert not probe_passed(content), content


def test_a_request_without_a_schema_keeps_the_key_caches_were_written_with():
    messages = [{"role": "user", "content": "Write 3 pairs."}]
    blob = json.dumps(["m", messages, 0.2, 1024], ensure_ascii=False, sort_keys=True)
    old = hashlib.sha256(blob.encode()).hexdigest()
    assert request_key("m", messages, 0.2, 1024) == old
    rf = response_format("json_schema", "qa", pairs_schema(3))
    assert request_key("m", messages, 0.2, 1024, rf) != old
    assert request_key("m", messages, 0.2, 1024, rf) != request_key("m", messages, 0.2, 1024,
                                                                  response_format("json_object", "qa", pairs_schema(3)))


def test_a_refusal_survives_the_cache(tmp_path):
    cache = ReplyCache(tmp_path / "probe.jsonl")
    cache.add("k", "probe", Reply("", 0, 0, None, refused="HTTP 400: response_format is not supported"))
    cache.add("j", "probe", Reply('{"code": 1}', 3, 4, "stop"))
    cache.close()
    replies = load_replies(tmp_path / "probe.jsonl")
    assert replies["k"].refused == "HTTP 400: response_format is not supported" and replies["j"].refused is None


def test_the_schemas_named_pairs_are_read_as_a_list():
    passage = "The lamp burns oil each night."
    value = {"pair_1": {"question": "What does lamp.md say the lamp burns?", "answer": "Oil.", "quote": passage},
             "pair_2": {"question": "What does the passage say?", "answer": "Oil.", "quote": passage}}
    kept, dropped = check_pairs(value, passage)
    assert [p["question"] for p in kept] == ["What does lamp.md say the lamp burns?"]
    assert dropped == [{"question": "What does the passage say?", "reason": "question says 'the passage'"}]


def got(value) -> StructuredReply:
    return StructuredReply(Reply(json.dumps(value), 1, 1, "stop"), value, "schema", True)


def test_rewordings_are_checked_in_order_with_a_reason_for_each_dropped_one():
    question = "How often does lamp.md say the lamp is refilled?"
    taken = {question_key(question), question_key("What does lamp.md say the lamp burns?")}
    value = {"question_1": "how often does lamp.md say the lamp is refilled",  # the original, case and ? aside
             "question_2": "Refill the lamp.", "question_3": "What does this code refill?",
             "question_4": "What does lamp.md say the lamp burns?", "question_5": "  ",
             "question_6": "According to lamp.md, how often is the lamp refilled?",
             "question_7": "According to lamp.md, how  often is the lamp refilled?",
             "question_8": "Per lamp.md, at what interval is the lamp refilled?",
             "question_9": "In lamp.md, how frequently is the lamp refilled?"}
    kept, dropped = check_rewordings(got(value), question, 2, taken)
    assert kept == ["According to lamp.md, how often is the lamp refilled?",
                    "Per lamp.md, at what interval is the lamp refilled?"]
    assert [d["reason"] for d in dropped] == [
        "rewording: repeats the question", "rewording: not a question", "rewording: says 'this code'",
        "rewording: repeats another question", "rewording: empty", "rewording: repeats another question",
        "rewording: more rewordings than asked for"]
    assert question_key(kept[0]) in taken


def test_a_rewording_reply_of_the_wrong_shape_is_one_reason():
    kept, dropped = check_rewordings(got({"questions": "What?"}), "What?", 2, set())
    assert kept == [] and dropped == [{"reason": "rewordings: not a list of questions"}]
    none = StructuredReply(Reply("{", 1, 1, "length"), None, "schema", False,
                           "not JSON after repairs (the reply was cut off at max_tokens)")
    assert check_rewordings(none, "What?", 2, set())[1] == [
        {"reason": "rewordings: not JSON after repairs (the reply was cut off at max_tokens)"}]
