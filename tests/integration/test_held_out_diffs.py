"""A held-out file's diff is never trained through the commits that changed it."""

import re

from conftest import make_repo
from knowtune.config_file import validate
from knowtune.pipeline import run_stages
from knowtune.records import Document, Example, read_jsonl

HUNK = re.compile(r"^diff --git a/(\S+) b/(\S+)$", re.M)


def carried(e: Example) -> set[str]:
    """The files whose hunks an example's text carries."""
    texts = [e.text or ""] + [m["content"] for m in (e.messages or []) + (e.prompt or []) + (e.chosen or [])]
    return {m.group(2) for t in texts for m in HUNK.finditer(t)}


def test_the_hunks_of_held_out_files_follow_them_out_of_training(tmp_path):
    repo = make_repo(tmp_path / "repo")
    # A share this large holds out enough files that the fixture's commits, which add several files each,
    # touch held-out and trained ones at once.
    cfg = validate({
        "name": "t", "runs_dir": str(tmp_path / "runs"),
        "sources": [{"type": "repo", "path": str(repo)}, {"type": "git", "path": str(repo)}],
        "build": {"tokenizer": {"vocab_size": 1000}}, "train": {"max_length": 256},
        "curate": {"val_share": 0.2, "test_share": 0.2, "knowledge_share": 0.2,
                   "near_dedup": {"enabled": False}, "semantic_dedup": {"enabled": False}},
    })
    run = run_stages(cfg, ["ingest", "tokenizer", "chunk", "examples", "curate"])
    data = run.stage("curate")
    split = {s: list(read_jsonl(data / s / "examples.jsonl", Example)) for s in ("train", "val", "test", "knowledge")}
    files = {e.metadata["path"]: s for s in ("val", "test") for e in split[s] if e.metadata.get("doc_kind") != "change"}
    held = set(files)
    hunks_held = [e for s in ("val", "test") for e in split[s] if e.metadata.get("doc_kind") == "change"
                  and carried(e) & held]
    # The fixture's history changes held-out files in commits that are trained: otherwise the test shows nothing.
    trained_commits = {e.document_id for e in split["train"] if e.metadata.get("doc_kind") == "change"}
    commits = {d.id: d for d in read_jsonl(run.stage("ingest") / "documents.jsonl", Document) if d.kind == "change"}
    assert any(set(commits[c].metadata["files"]) & held for c in trained_commits), "no trained commit has a held file"
    for e in split["train"] + split["knowledge"]:
        assert not carried(e) & held, (e.id, carried(e) & held)
        if e.metadata.get("rule") == "change_reason":
            assert e.metadata["about"] not in held  # "Why was <file> changed in ...?" follows the file too
    for e in hunks_held:  # each part went where its file went
        (path,) = carried(e)
        assert e.split == files[path]
    moved_questions = [e for s in ("val", "test") for e in split[s] if e.metadata.get("rule") == "change_reason"
                       and e.metadata["about"] in held and e.document_id in trained_commits]
    assert moved_questions and all(e.split == files[e.metadata["about"]] for e in moved_questions)
    # The message of a trained commit stays trained as raw text: only its held-out files' parts left.
    moved_from = {x.document_id for x in hunks_held} & trained_commits
    assert all(any(e.kind == "raw" and e.document_id == c and "follows" not in e.metadata for e in split["train"])
               for c in moved_from)
