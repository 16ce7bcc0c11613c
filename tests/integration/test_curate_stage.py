"""The curate stage on planted data: what is removed and what is kept, by id, and why."""

import json
import random
import re
from pathlib import Path

import pytest

from conftest import FIXTURE
from fixtures.secrets import PLANTED
from knowtune.config import CurateConfig, ExecutorConfig
from knowtune.curate import run_curate
from knowtune.curate.minhash import jaccard
from knowtune.records import Example, read_jsonl, write_jsonl
from knowtune.settings import CurateSettings
from knowtune.runs import StageError

WORDS = ("lamp wick oil keeper storm harbour store order crown night reserve supplier glass mantle barrel "
         "bundle report archive rota watch tower beam fog bell chart tide boat rope ladder stair window").split()
# Filler prose draws on every word of the fixtures, so two filler texts are not near each other in meaning.
VOCAB = sorted({w.lower() for p in FIXTURE.parent.rglob("*.md") for w in re.findall(r"[A-Za-z]{3,}", p.read_text())})


def prose(rng: random.Random, n: int) -> str:
    sentences = []
    while sum(len(s.split()) for s in sentences) < n:
        words = [rng.choice(VOCAB) for _ in range(rng.randint(6, 12))]
        sentences.append(" ".join(words).capitalize() + ".")
    return " ".join(sentences)


def edit_to(rng: random.Random, text: str, target: float) -> str:
    """An edited copy whose measured Jaccard with `text` is within 0.02 of `target`: its last word changed,
    then new words added at the end until the similarity is down to the target."""
    words = text.split()
    words[-1] = "quartz."
    for _ in range(10_000):
        if abs(jaccard(text, " ".join(words)) - target) <= 0.02:
            return " ".join(words)
        words.append(rng.choice(["zephyr", "nimbus", "copper", "ember"]) + str(rng.randint(0, 999)))
    raise AssertionError("could not reach the target similarity")


def chat(i: str, doc: str, q: str, a: str, kind: str = "qa") -> Example:
    return Example(id=i, kind=kind, document_id=doc, messages=[{"role": "user", "content": q},
                                                                {"role": "assistant", "content": a}],
                   metadata={"source": "repo:t", "doc_kind": "doc"})


def raw(i: str, doc: str, text: str) -> Example:
    return Example(id=i, kind="raw", document_id=doc, text=text, metadata={"source": "repo:t", "doc_kind": "doc"})


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    from knowtune.examples.tokenizer import train_bpe

    rng = random.Random(7)
    tmp = tmp_path_factory.mktemp("curate")
    examples, truth = [], {}
    for d in range(60):  # filler documents, each with raw text and two distinct questions
        examples.append(raw(f"raw{d}", f"d{d}", prose(rng, 120)))
        for q in range(2):
            examples.append(chat(f"qa{d}.{q}", f"d{d}", f"What does page {d} say about the {WORDS[q]} in part {q}?",
                                 prose(rng, 25)))
    base = prose(rng, 90)
    examples.append(raw("near-base", "dn", base))
    for target in (1.0, 0.95, 0.9, 0.6, 0.5):
        copy = base if target == 1.0 else edit_to(rng, base, target)
        if target == 1.0:
            copy = "  " + base.upper().replace(" ", "  ") + "\n"  # only case and spacing differ
        examples.append(raw(f"near-{target}", f"dn{target}", copy))
        truth[f"near-{target}"] = jaccard(base, copy)
    answer = "The reserve is twelve litres of oil, enough for four storm nights at the tower."
    examples.append(chat("sem-a", "ds", "How much oil is held in reserve at the tower?", answer))
    examples.append(chat("sem-b", "ds2", "What is the size of the oil reserve?",
                         "The reserve is twelve litres of oil, which is enough for four storm nights at the tower."))
    examples.append(chat("sem-c", "ds3", "How much oil is held in reserve at the tower?",
                         "Wicks are ordered from the Marsh Weavers and arrive within seven days of ordering."))
    examples.append(chat("leak", "dl", "What is the deploy key?", f"It is {PLANTED[0][1]}"))
    write_jsonl(tmp / "examples" / "examples.jsonl", examples)
    tok = train_bpe([e.text or e.messages[-1]["content"] for e in examples], 600)
    tok.save_pretrained(tmp / "tokenizer")
    return tmp, examples, truth


def settings(cfg: CurateConfig, executor: ExecutorConfig = ExecutorConfig()) -> CurateSettings:
    return CurateSettings(curate=cfg, allow=[], executor=executor)


def curate(tmp: Path, out: str, **changed) -> tuple[dict, dict[str, dict]]:
    cfg = CurateConfig(max_tokens=4096, leak_check="drop", **changed)
    counts = run_curate(settings(cfg), tmp / "examples", tmp / "tokenizer", tmp / out)
    excluded = {row["id"]: row for row in read_jsonl(tmp / out / "excluded.jsonl")}
    return counts, excluded


def test_each_step_removes_what_it_should_and_keeps_the_rest(planted):
    tmp, examples, truth = planted
    counts, excluded = curate(tmp, "a", knowledge_share=0.0, near_dedup={"keep": "earliest"})
    print({k: round(v, 3) for k, v in truth.items()}, {k: v["step"] for k, v in excluded.items()})
    for copy in ("near-1.0",):
        assert excluded[copy]["step"] == "exact_dedup" and excluded[copy]["duplicate_of"] == "near-base"
    for copy in ("near-0.95", "near-0.9"):
        assert excluded[copy]["step"] == "near_dedup" and excluded[copy]["duplicate_of"] == "near-base", copy
    # Below the threshold: not near-duplicates (meaning may still be close enough for the semantic step).
    assert all(excluded.get(c, {}).get("step") != "near_dedup" for c in ("near-0.6", "near-0.5"))
    assert not any(e.startswith("raw") for e in excluded)  # filler is never mistaken for a duplicate
    pair = [excluded[i] for i in ("sem-a", "sem-b") if i in excluded]  # same answer, reworded: one stays
    assert len(pair) == 1 and pair[0]["step"] == "semantic_dedup"
    assert pair[0]["duplicate_of"] == ({"sem-a", "sem-b"} - {pair[0]["id"]}).pop()
    assert "sem-c" not in excluded  # same question, different answer: not a duplicate
    assert excluded["leak"]["step"] == "leak_check"
    assert PLANTED[0][1].split()[-1] not in json.dumps(excluded["leak"])  # excluded.jsonl is not the leak
    dropped_ids = set(excluded)
    kept = {e.id for e in read_jsonl(tmp / "a" / "train" / "examples.jsonl", Example)} | {
        e.id for s in ("val", "test") for e in read_jsonl(tmp / "a" / s / "examples.jsonl", Example)}
    assert kept | dropped_ids == {e.id for e in examples} and not kept & dropped_ids
    stats = json.loads((tmp / "a" / "stats.json").read_text())
    assert [f["step"] for f in stats["funnel"]] == ["leak_check", "quality", "length", "exact_dedup", "near_dedup",
                                                    "semantic_dedup", "decontaminate", "select"]
    assert (tmp / "a" / "README.md").read_text().startswith("---\nconfigs:")


def test_held_out_questions_copied_into_training_qa_are_removed_but_raw_text_stays(planted, tmp_path):
    tmp, examples, _ = planted
    _, first = curate(tmp, "b", knowledge_share=0.3)
    held = [e for e in read_jsonl(tmp / "b" / "knowledge" / "examples.jsonl", Example)][0]
    q, a = held.messages[0]["content"], held.messages[1]["content"]
    train_doc = next(e.document_id for e in read_jsonl(tmp / "b" / "train" / "examples.jsonl", Example)
                     if e.document_id != held.document_id)
    extra = [chat("copied-q", train_doc, q, "Something else entirely about ropes and ladders in the tower."),
             chat("copied-a", train_doc, "Tell me something about the store?", a),
             raw("raw-with-answer", held.document_id, prose(random.Random(1), 60) + " " + a + " " + q)]
    write_jsonl(tmp_path / "examples" / "examples.jsonl", examples + extra)
    (tmp_path / "tokenizer").symlink_to(tmp / "tokenizer")
    # Dedup would catch the copied answer first (it runs before the split); this test is about decontamination.
    _, excluded = curate(tmp_path, "c", knowledge_share=0.3, near_dedup={"enabled": False},
                         semantic_dedup={"enabled": False})
    assert excluded["copied-q"]["step"] == "decontaminate" and excluded["copied-q"]["duplicate_of"] == held.id
    assert excluded["copied-a"]["step"] == "decontaminate"
    assert "raw-with-answer" not in excluded


def test_a_secret_past_ingest_fails_the_stage_loudly_by_default(planted, tmp_path):
    tmp, _, _ = planted
    with pytest.raises(StageError, match="1 examples still hold a secret"):
        run_curate(settings(CurateConfig(max_tokens=4096)), tmp / "examples", tmp / "tokenizer",
                   tmp_path / "out")
    assert json.loads((tmp_path / "out" / "excluded.jsonl").read_text().splitlines()[0])["step"] == "leak_check"


def test_a_changed_threshold_reuses_every_cached_vector(planted):
    tmp, _, _ = planted
    curate(tmp, "d")
    curate(tmp, "d", near_dedup={"threshold": 0.7}, semantic_dedup={"threshold": 0.9})
    log = (tmp / "d" / "log.txt").read_text()
    assert re.search(r"vector cache: \d+ reused, 0 computed", log), log


def test_the_dataset_loads_with_datasets_and_as_jsonl(planted):
    from datasets import load_from_disk

    tmp, _, _ = planted
    curate(tmp, "e")
    chat_ds = load_from_disk(str(tmp / "e" / "hf" / "chat"))
    assert "train" in chat_ds and chat_ds["train"][0]["messages"][0]["role"] == "user"
    lines = (tmp / "e" / "train" / "chat.jsonl").read_text().splitlines()
    assert len(lines) == chat_ds["train"].num_rows and set(json.loads(lines[0])) == {"messages"}


def test_selection_touches_the_train_split_only(planted):
    tmp, _, _ = planted
    base, _ = curate(tmp, "f")
    sel, excluded = curate(tmp, "g", select={"top_k": 20})
    assert sel["train"] == 20 and sel["val"] == base["val"] and sel["test"] == base["test"]
    assert sum(r["step"] == "select" for r in excluded.values()) == base["train"] - 20


def test_the_mix_sets_the_share_of_each_kind(planted):
    tmp, _, _ = planted
    curate(tmp, "h", select={"mix": {"raw": 0.25, "qa": 0.75}})
    train = list(read_jsonl(tmp / "h" / "train" / "examples.jsonl", Example))
    share = sum(e.kind == "raw" for e in train) / len(train)
    assert abs(share - 0.25) < 0.03, share


@pytest.mark.slow
def test_a_dask_cluster_of_two_workers_gives_the_same_dataset_byte_for_byte(planted):
    import os

    from distributed import LocalCluster

    tmp, _, _ = planted
    curate(tmp, "local")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        cfg = CurateConfig(max_tokens=4096, leak_check="drop")
        run_curate(settings(cfg, ExecutorConfig(kind="dask", address=cluster.scheduler_address)), tmp / "examples",
                   tmp / "tokenizer", tmp / "dask")
    log = (tmp / "dask" / "log.txt").read_text()
    pids = {int(p) for line in log.splitlines() if "processes [" in line
            for p in re.findall(r"\d+", line.split("processes [")[1])}
    assert len(pids) == 2 and os.getpid() not in pids, log
    for path in sorted((tmp / "local").rglob("*")):
        rel = path.relative_to(tmp / "local")
        if path.is_file() and rel.parts[0] not in ("cache",) and rel.name != "log.txt":
            assert path.read_bytes() == (tmp / "dask" / rel).read_bytes(), rel


def same_dataset(a: Path, b: Path) -> None:
    """Every file the stage wrote is the same bytes, but its timings; cached vectors are the same bits."""
    import sqlite3

    files = [p.relative_to(a) for p in sorted(a.rglob("*")) if p.is_file()]
    for rel in files:
        if rel.parts[0] != "cache" and rel.name != "log.txt":
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel

    def vectors(root: Path) -> dict:
        db = sqlite3.connect(root / "cache" / "vectors.sqlite")
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {(t, k): v for t in tables for k, v in db.execute(f"SELECT key, value FROM {t}")}

    va, vb = vectors(a), vectors(b)
    shared = va.keys() & vb.keys()
    assert len(shared) > 50 and all(va[k] == vb[k] for k in shared)


@pytest.mark.slow
def test_a_process_pool_gives_the_dataset_and_the_vectors_of_one_process(planted, monkeypatch):
    import os

    from knowtune import executor

    tmp, _, _ = planted
    curate(tmp, "in-process")
    monkeypatch.setattr(executor, "POOL_MIN_ITEMS", 10)  # the pool path, on a small corpus
    cfg = CurateConfig(max_tokens=4096, leak_check="drop")
    run_curate(settings(cfg, ExecutorConfig(workers=2)), tmp / "examples", tmp / "tokenizer", tmp / "pool")
    log = (tmp / "pool" / "log.txt").read_text()
    pids = {int(p) for line in log.splitlines() if "processes [" in line
            for p in re.findall(r"\d+", line.split("processes [")[1])}
    assert len(pids) == 2 and os.getpid() not in pids, log  # workers of one thread each did the work
    same_dataset(tmp / "in-process", tmp / "pool")
    assert re.search(r"semantic_dedup: embeddings on .*; \d+ records within 0.003 of the threshold 0.95", log), log
