import json
from pathlib import Path

import pytest

from knowtune.config import HFDatasetSource, JsonlSource
from knowtune.records import Example, Skipped
from knowtune.sources import SourceError, chat_data

CHAT = Path(__file__).parents[1] / "fixtures" / "chat"


def read(src) -> tuple[list[Example], dict[str, str]]:
    items = list(chat_data.read(src))
    return [e for e in items if isinstance(e, Example)], {s.path: s.reason for s in items if isinstance(s, Skipped)}


def jsonl(path: Path, **settings) -> JsonlSource:
    return JsonlSource(type="jsonl", path=path, **settings)


def test_messages_records_are_read_as_they_are():
    examples, skipped = read(jsonl(CHAT / "messages.jsonl"))
    assert len(examples) == 4 and skipped == {"messages.jsonl:4": "no assistant reply"}
    first = examples[0]
    assert first.kind == "instruction" and first.document_id == first.id
    assert first.messages[0] == {"role": "system", "content": "You answer questions about the lighthouse store room."}
    assert first.metadata == {"source": "jsonl:messages.jsonl", "origin": "external", "format": "messages"}
    # OpenAI's list-of-parts content is joined into text
    assert examples[2].messages[1] == {"role": "assistant", "content": "The Marsh Weavers, in seven days."}


def test_alpaca_records_join_instruction_and_input():
    examples, skipped = read(jsonl(CHAT / "alpaca.jsonl"))
    assert len(examples) == 4
    assert list(skipped) == ["alpaca.jsonl:4"] and skipped["alpaca.jsonl:4"].startswith("not valid JSON")
    assert examples[0].messages == [
        {"role": "user", "content": "Explain how orders are rounded."},
        {"role": "assistant", "content": "Totals are rounded to the nearest half crown, always upwards."}]
    assert examples[1].messages[0]["content"] == "Price this order.\n\n60 wicks at 2 crowns each"
    assert examples[2].messages[0] == {"role": "system", "content": "You know the keeper's rota."}
    assert {e.metadata["format"] for e in examples} == {"alpaca"}


def test_sharegpt_roles_are_mapped():
    examples, skipped = read(jsonl(CHAT / "sharegpt.jsonl"))
    assert len(examples) == 4 and skipped == {"sharegpt.jsonl:4": "unknown role 'function_call'"}
    assert [m["role"] for m in examples[0].messages] == ["system", "user", "assistant"]
    assert examples[0].messages[2]["content"] == "At nine in the evening, from cron."


def test_ids_survive_reruns_and_limit_caps_examples():
    first, _ = read(jsonl(CHAT))  # a folder: every .jsonl in it
    again, _ = read(jsonl(CHAT))
    assert len(first) == 12 and [e.id for e in first] == [e.id for e in again]
    assert len({e.id for e in first}) == 12
    capped, _ = read(jsonl(CHAT, limit=5))
    assert [e.id for e in capped] == [e.id for e in first[:5]]


def test_records_that_fit_no_format_are_skipped_with_reasons(tmp_path):
    path = tmp_path / "mixed.jsonl"
    rows = [
        {"prompt": "x", "completion": "y"},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "tool", "content": "{}"}]},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  "}]},
        {"conversations": [{"from": "gpt", "value": "hello"}]},
        {"instruction": "Say hi", "input": "", "output": "hi"},
        [1, 2],
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    examples, skipped = read(jsonl(path))
    assert len(examples) == 1
    assert skipped == {
        "mixed.jsonl:1": "fits no chat format (messages, alpaca, sharegpt)",
        "mixed.jsonl:2": "unknown role 'tool'",
        "mixed.jsonl:3": "an empty assistant reply",
        "mixed.jsonl:4": "no user message",
        "mixed.jsonl:6": "not a JSON object",
    }
    _, forced = read(jsonl(CHAT / "messages.jsonl", format="alpaca"))
    assert set(forced.values()) == {"not an alpaca record (no 'instruction')"}


def test_fingerprint_follows_content(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text((CHAT / "alpaca.jsonl").read_text())
    before = chat_data.fingerprint(jsonl(path))
    assert chat_data.fingerprint(jsonl(path, limit=2)) != before
    path.write_text(path.read_text() + '{"instruction": "More", "output": "Yes"}\n')
    assert chat_data.fingerprint(jsonl(path)) != before


def test_hf_dataset_saved_to_disk_is_read_by_split(tmp_path):
    import datasets

    rows = [{"instruction": f"How many wicks in box {i}?", "input": "", "output": f"{i * 10} wicks."} for i in range(4)]
    rows.append({"instruction": "Empty answer", "input": "", "output": ""})
    datasets.DatasetDict({
        "train": datasets.Dataset.from_list(rows),
        "test": datasets.Dataset.from_list(rows[:1]),
    }).save_to_disk(str(tmp_path / "wicks"))
    src = HFDatasetSource(type="hf_dataset", path=str(tmp_path / "wicks"))
    examples, skipped = read(src)
    assert len(examples) == 4
    assert examples[3].messages[1] == {"role": "assistant", "content": "30 wicks."}
    assert examples[0].metadata == {"source": "hf_dataset:wicks:train", "origin": "external", "format": "alpaca"}
    assert skipped == {"hf_dataset:wicks:train:4": "no assistant reply"}
    assert [e.id for e in read(src)[0]] == [e.id for e in examples]
    fp = chat_data.fingerprint(src)
    assert fp == chat_data.fingerprint(src) and fp != chat_data.fingerprint(src.model_copy(update={"split": "test"}))
    assert len(read(HFDatasetSource(type="hf_dataset", path=str(tmp_path / "wicks"), split="test"))[0]) == 1
    with pytest.raises(SourceError, match="no split 'validation'"):
        read(HFDatasetSource(type="hf_dataset", path=str(tmp_path / "wicks"), split="validation"))


def test_hf_dataset_of_messages_with_one_split(tmp_path):
    import datasets

    rows = [{"messages": [{"role": "user", "content": "Reserve?"}, {"role": "assistant", "content": "Twelve litres."}]}]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "one"))
    examples, _ = read(HFDatasetSource(type="hf_dataset", path=str(tmp_path / "one")))
    assert examples[0].messages[1]["content"] == "Twelve litres." and examples[0].metadata["format"] == "messages"
