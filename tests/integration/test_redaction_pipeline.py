"""Secrets planted everywhere a user's data can carry them never reach any file of the run."""

import json
import shutil
from pathlib import Path

import pytest

from conftest import FIXTURE, git, make_repo
from fixtures.secrets import NEGATIVE_CONTROLS, PII, PII_VALUES, PLANTED, SECRET_VALUES
from knowtune.config_file import validate
from knowtune.pipeline import ORDER, report, run_stages
from knowtune.records import Document, read_jsonl

pytestmark = pytest.mark.slow

AUTHOR_EMAIL = "ada@lighthouse.example"  # conftest's commit author


def byte_level(text: str) -> str:
    """The string as it is stored in a byte-level BPE vocabulary (GPT-2's bytes-to-unicode map)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    table = {**{b: chr(b) for b in printable}, **{b: chr(256 + i) for i, b in enumerate(others)}}
    return "".join(table[b] for b in text.encode("utf-8"))


def plant(tmp_path: Path) -> tuple[Path, Path]:
    repo = make_repo(tmp_path / "repo")
    groups = [PLANTED[i::4] for i in range(4)]
    # 1. in code, and so also in the diff of the commit that adds it
    (repo / "lanterna" / "settings.py").write_text(
        '"""Settings of the harbour link."""\n\n' + "\n\n".join(s for _, s in groups[0]) + "\n")
    # 2. in a Markdown page, with personal data
    (repo / "docs" / "access.md").write_text(
        "# Access to the harbour link\n\n" + "\n\n".join(s for _, s in groups[1]) + "\n\n## Contacts\n\n"
        + "\n\n".join(s for _, s in PII) + "\n")
    # 3. negative controls: look random, are not secrets
    (repo / "lanterna" / "hashes.txt").write_text("\n".join(NEGATIVE_CONTROLS) + "\n")
    git(repo, "add", "lanterna/settings.py", "docs/access.md", "lanterna/hashes.txt")
    git(repo, "commit", "-qm", "Connect to the harbour link")
    # 4. in commit messages
    for i, (_, snippet) in enumerate(groups[2]):
        (repo / "CHANGELOG.md").write_text((repo / "CHANGELOG.md").read_text() + f"\n- rotation {i}\n")
        git(repo, "commit", "-qam", f"Rotate credentials {i}\n\nThe old one was:\n{snippet}\n")
    # 5. in a pull request's description and comments
    prs = json.loads((FIXTURE.parent / "pull_requests" / "export.json").read_text())
    prs[0]["body"] += "\n\n" + "\n\n".join(s for _, s in groups[3][::2])
    for comment, (_, snippet) in zip(prs[0]["comments"] * 20, groups[3][1::2]):
        comment["body"] += "\n" + snippet
    prs[0]["comments"] = [dict(c) for c in prs[0]["comments"]]
    export = tmp_path / "prs"
    export.mkdir()
    (export / "export.json").write_text(json.dumps(prs))
    return repo, export


def test_no_planted_secret_or_personal_data_survives_anywhere_in_the_run(tmp_path):
    repo, export = plant(tmp_path)
    cfg = validate({
        "name": "leak", "runs_dir": str(tmp_path / "runs"),
        "sources": [{"type": "repo", "path": str(repo)}, {"type": "git", "path": str(repo)},
                    {"type": "pull_requests", "path": str(export)}],
        "build": {"tokenizer": {"vocab_size": 2000}},
        "train": {"model": {"hidden_size": 64, "layers": 1, "heads": 2, "intermediate_size": 128}, "precision": "fp32",
                  "max_length": 256, "max_steps": 1},
        "eval": {"knowledge_samples": 1, "trained_samples": 1, "max_new_tokens": 4, "general_samples": 2},
    })
    run = run_stages(cfg, ORDER)
    report(cfg, run)

    files = [p for p in run.root.rglob("*") if p.is_file() and p.name != "pseudonym.salt"]
    assert any(p.name == "tokenizer.json" for p in files) and len(files) > 20
    blobs = {p: p.read_bytes() for p in files}
    leaks = []
    for value in SECRET_VALUES + PII_VALUES + [AUTHOR_EMAIL, "Ada Keeper", "tom-harbour"]:
        forms = {value, byte_level(value), json.dumps(value)[1:-1]}
        for form in forms:
            if len(form) >= 6:
                leaks += [f"{value[:12]}... in {p.relative_to(run.root)}" for p, b in blobs.items()
                          if form.encode() in b]
    assert not leaks, "\n".join(sorted(set(leaks)))

    docs = list(read_jsonl(run.stage("ingest") / "documents.jsonl", Document))
    hashes = next(d for d in docs if d.path == "lanterna/hashes.txt").text
    changed = [c for c in NEGATIVE_CONTROLS if c not in hashes]
    print(f"negative controls redacted: {len(changed)} of {len(NEGATIVE_CONTROLS)}")
    assert len(changed) <= len(NEGATIVE_CONTROLS) / 20, changed

    commit = next(d for d in docs if d.kind == "change" and d.metadata.get("commit"))
    assert commit.metadata["author"].startswith("person-") and commit.metadata["author_email"].endswith(".invalid")
    pr = next(d for d in docs if d.path == "pr/12")
    assert "<SECRET:" in pr.text and pr.metadata["author"].startswith("person-")
    assert pr.metadata["commenters"] and all(c in pr.text for c in pr.metadata["commenters"])  # same pseudonyms

    counts = json.loads((run.stage("ingest") / "manifest.json").read_text())["counts"]
    by_kind = counts["redacted_by_kind"]
    assert sum(by_kind.values()) >= len(SECRET_VALUES) and by_kind.get("email") and by_kind.get("person")
    md = (run.root / "report.md").read_text()
    assert "Redacted before anything else read the text" in md  # values: covered by the scan of every file above


def test_secrets_drop_mode_leaves_the_document_out_with_its_reason(tmp_path):
    repo = make_repo(tmp_path / "repo", history=False)
    (repo / "lanterna" / "settings.py").write_text(PLANTED[0][1] + "\n")
    shutil.copy(FIXTURE / "README.md", repo / "README.md")
    cfg = validate({"name": "drop", "runs_dir": str(tmp_path / "runs"), "sources": [{"type": "repo", "path": str(repo)}],
                    "ingest": {"redact": {"secrets": "drop"}}})
    run = run_stages(cfg, ["ingest"])
    docs = {d.path for d in read_jsonl(run.stage("ingest") / "documents.jsonl", Document)}
    skipped = {s["path"]: s["reason"] for s in read_jsonl(run.stage("ingest") / "skipped.jsonl")}
    assert "lanterna/settings.py" not in docs and "README.md" in docs
    assert skipped["lanterna/settings.py"].startswith("holds a secret")


def test_credential_files_are_never_read(tmp_path):
    repo = make_repo(tmp_path / "repo", history=False)
    (repo / ".env.production").write_text("DB_PASSWORD=hunter2-but-longer-Xy7\n")
    (repo / "deploy.pem").write_text("-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n")
    (repo / "notes.key.md").write_text("# Keys\n\nWhere the spare lamp keys hang.\n")
    cfg = validate({"name": "cred", "runs_dir": str(tmp_path / "runs"), "sources": [{"type": "repo", "path": str(repo)}],
                    "ingest": {"redact": {"extra_credential_files": ["*.key.md"]}}})
    run = run_stages(cfg, ["ingest"])
    skipped = {s["path"]: s["reason"] for s in read_jsonl(run.stage("ingest") / "skipped.jsonl")}
    assert skipped[".env.production"].startswith("credential file")
    assert skipped["deploy.pem"].startswith("credential file")
    assert skipped["notes.key.md"] == "credential file (matches *.key.md)"
    assert b"hunter2" not in (run.stage("ingest") / "documents.jsonl").read_bytes()
