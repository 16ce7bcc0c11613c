"""Every kind of source in one run, with a teacher model behind a real HTTP server on 127.0.0.1."""

import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from conftest import FIXTURE, make_repo
from fake_openai import FakeOpenAI
from knowtune.config_file import validate
from knowtune.pipeline import report, run_stages
from knowtune.records import Example, read_jsonl

pytestmark = pytest.mark.slow
FIXTURES = FIXTURE.parent
BUILD = ["ingest", "tokenizer", "chunk", "examples", "curate"]


def config(tmp_path, repo, url):
    return {
        "name": "all", "runs_dir": str(tmp_path / "runs"),
        "sources": [
            {"type": "repo", "path": str(repo)},
            {"type": "git", "path": str(repo)},
            {"type": "docs", "path": str(FIXTURES / "docs")},
            {"type": "pull_requests", "path": str(FIXTURES / "pull_requests")},
            {"type": "jsonl", "path": str(FIXTURES / "chat" / "alpaca.jsonl")},
        ],
        "build": {"tokenizer": {"vocab_size": 1500}, "chunk_overlap": 16, "preference": True,
                  "teacher": {"base_url": url, "model": "teacher-1", "pairs_per_chunk": 2, "concurrency": 4,
                              "timeout": 5, "max_retries": 1},
                  "judge": {}},
    }


def test_all_sources_teacher_judge_and_preference_in_one_dataset(tmp_path):
    repo = make_repo(tmp_path / "repo")
    with FakeOpenAI() as fake:
        cfg = validate(config(tmp_path, repo, fake.url))
        run = run_stages(cfg, BUILD)
        sent = len(fake.requests)

        examples = list(read_jsonl(run.stage("examples") / "examples.jsonl", Example))
        kinds = Counter(e.kind for e in examples)
        assert {"raw", "instruction", "qa", "preference"} <= set(kinds)
        rules = Counter(e.metadata.get("rule") for e in examples if e.kind == "qa")
        assert rules["teacher"] > 0 and rules["docstring"] > 0 and rules["heading"] > 0
        sources = Counter(e.metadata["source"].split(":")[0] for e in examples)
        assert {"repo", "git", "docs", "pull_requests", "jsonl"} <= set(sources)
        assert any(e.metadata.get("origin") == "external" for e in examples)
        teacher = [e for e in examples if e.kind == "qa" and e.metadata.get("rule") == "teacher"]
        assert all(e.metadata["judge_reason"] for e in teacher)
        assert {"judge", "qa", "closed_book"} <= {r["kind"] for r in fake.requests}
        skipped = {s["reason"] for s in read_jsonl(run.stage("examples") / "skipped.jsonl")}
        assert "no QA extractor for rust" in skipped

        # Nothing is paid for twice: the examples stage run again answers from its cache.
        run_stages(cfg, ["examples"], force=True)
        assert len(fake.requests) == sent
        again = list(read_jsonl(run.stage("examples") / "examples.jsonl", Example))
        assert [e.id for e in again] == [e.id for e in examples]

        # The dry run estimates without sending, and sees what the cache already holds.
        env = {**os.environ, "COLUMNS": "200"}
        cfg_file = tmp_path / "cfg.json.yaml"
        cfg_file.write_text(json.dumps(config(tmp_path, repo, fake.url)))
        out = subprocess.run([sys.executable, "-m", "knowtune", "build", str(cfg_file), "--dry-run"],
                             capture_output=True, text=True, env=env)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "teacher dry run (nothing sent)" in out.stdout and "cached" in out.stdout
        assert len(fake.requests) == sent

    report(cfg, run)
    md = (run.root / "report.md").read_text()
    for kind in ("raw", "instruction", "qa", "preference"):
        assert md.count(f"Sample {kind} examples:") == 1
    assert "| docs:docs |" in md and "| pull_requests:pull_requests |" in md
    assert "| teacher | value |" in md


def test_without_a_teacher_preference_pairs_are_made_offline(tmp_path):
    repo = make_repo(tmp_path / "repo", history=False)
    cfg = validate({"name": "offline", "runs_dir": str(tmp_path / "runs"), "sources": [{"type": "repo", "path": str(repo)}],
                    "build": {"preference": True}})
    run = run_stages(cfg, ["ingest", "tokenizer", "chunk", "examples"])
    examples = list(read_jsonl(run.stage("examples") / "examples.jsonl", Example))
    prefs = [e for e in examples if e.kind == "preference"]
    qa = {e.id: e for e in examples if e.kind == "qa"}
    assert len(prefs) > 10
    for p in prefs:
        assert p.chosen[0]["content"] != p.rejected[0]["content"]
        source = qa[p.metadata["rejected_from"]]
        assert source.messages[-1]["content"] == p.rejected[0]["content"]  # a real answer, to another question
