"""Git bundles as repo and git sources, and the Brindlemark corpus bundle that ships in examples/."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import git, make_repo
from knowtune.config import GitSource, RepoSource
from knowtune.records import Document, Skipped
from knowtune.sources import SourceError, bundle, fingerprint, git_history, repo

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "examples" / "brindlemark"
CORPUS_BUNDLE = CORPUS / "brindlemark.bundle"


def read_repo(src: RepoSource) -> tuple[dict[str, Document], dict[str, str]]:
    paths, skipped = repo.candidates(src)
    items = list(repo.read(src, paths))
    docs = {d.path: d for d in items if isinstance(d, Document)}
    return docs, {s.path: s.reason for s in skipped + [s for s in items if isinstance(s, Skipped)]}


def make_bundle(root: Path, dest: Path, *refs: str) -> Path:
    git(root, "bundle", "create", str(dest), *(refs or ["--all"]))
    return dest


@pytest.fixture
def bundled(tmp_path):
    """The fixture repository with its history, and a bundle of all of it (HEAD included)."""
    root = make_repo(tmp_path / "r")
    git(root, "tag", "v0.2", "HEAD~7")
    return root, make_bundle(root, tmp_path / "lanterna.bundle")


def test_repo_source_on_a_bundle_reads_its_head(bundled):
    root, path = bundled
    (root / "README.md").write_text("# Lanterna\n\nAn uncommitted edit, which a bundle cannot hold.\n")
    docs, skipped = read_repo(RepoSource(type="repo", path=path))
    at_head, skipped_at_head = read_repo(RepoSource(type="repo", path=root, ref="HEAD"))
    assert sorted(docs) == sorted(at_head) and skipped == skipped_at_head
    for rel, doc in docs.items():
        assert doc.text == at_head[rel].text, rel
        assert doc.kind == at_head[rel].kind and doc.metadata == at_head[rel].metadata
    assert docs["README.md"].text == git(root, "show", "HEAD:README.md")
    sha = git(root, "rev-parse", "HEAD").strip()
    assert docs["README.md"].metadata["commit"] == sha and docs["README.md"].metadata["date"] == "2026-10-09"
    assert docs["README.md"].source == "repo:lanterna.bundle"
    assert skipped["docs/logo.png"] == "binary"


def test_repo_source_on_a_bundle_at_a_tag(bundled):
    root, path = bundled
    docs, _ = read_repo(RepoSource(type="repo", path=path, ref="v0.2"))
    assert sorted(docs) == [".gitignore", "README.md", "docs/pricing.md", "lanterna/__init__.py",
                            "lanterna/inventory.py", "lanterna/pricing.py"]
    assert {d.source for d in docs.values()} == {"repo:lanterna.bundle@v0.2"}
    with pytest.raises(SourceError, match=r"repo .*lanterna\.bundle has no branch, tag or commit 'v9\.9'"):
        repo.candidates(RepoSource(type="repo", path=path, ref="v9.9"))


def test_git_source_on_a_bundle_is_the_same_history(bundled):
    root, path = bundled
    for settings in ({"last": 100}, {"range": "v0.2..HEAD"}, {"last": 3, "max_diff_chars": 400}):
        from_bundle = list(git_history.read(GitSource(type="git", path=path, **settings)))
        from_folder = list(git_history.read(GitSource(type="git", path=root, **settings)))
        assert [d.text for d in from_bundle] == [d.text for d in from_folder], settings
        assert [d.metadata for d in from_bundle] == [d.metadata for d in from_folder]
        assert {d.source for d in from_bundle} == {"git:lanterna.bundle"}
    assert len(list(git_history.read(GitSource(type="git", path=path)))) == 9


def test_fingerprint_follows_the_bundles_content_and_the_settings(bundled, tmp_path):
    root, path = bundled
    sources = [RepoSource(type="repo", path=path), GitSource(type="git", path=path)]
    before = fingerprint(sources)
    os.utime(path, (1, 1))
    assert fingerprint(sources) == before  # a touched bundle is unchanged
    make_bundle(root, path)  # the same history bundled again
    assert fingerprint(sources) == before
    assert fingerprint([sources[0].model_copy(update={"exclude": ["docs/**"]}), sources[1]]) != before
    assert fingerprint([sources[0], sources[1].model_copy(update={"last": 3})]) != before
    (root / "README.md").write_text("# Lanterna\n\nOne more commit.\n")
    git(root, "commit", "-qam", "Say more", date="2026-10-20T12:00:00+00:00")
    make_bundle(root, path)
    after = fingerprint(sources)
    assert after.split("|")[0] != before.split("|")[0] and after.split("|")[1] != before.split("|")[1]
    # A tag's snapshot does not move when the branch does.
    tagged = RepoSource(type="repo", path=path, ref="v0.2")
    assert repo.fingerprint(tagged) == repo.fingerprint(tagged.model_copy(update={"path": root}))


def test_bundle_of_one_branch_without_head_reads_that_branch(bundled, tmp_path):
    root, _ = bundled
    path = make_bundle(root, tmp_path / "main-only.bundle", "main")
    assert b"HEAD" not in path.read_bytes().split(b"\n\n", 1)[0]
    docs, _ = read_repo(RepoSource(type="repo", path=path))
    assert docs["README.md"].metadata["commit"] == git(root, "rev-parse", "main").strip()
    assert len(list(git_history.read(GitSource(type="git", path=path)))) == 9


def test_bundle_of_several_branches_without_head_asks_for_a_ref(bundled, tmp_path):
    root, _ = bundled
    git(root, "branch", "storm-log", "HEAD~2")
    path = make_bundle(root, tmp_path / "two.bundle", "main", "storm-log")
    with pytest.raises(SourceError, match=r"two\.bundle has no HEAD; set ref to one of its branches \(main, storm-log\)"):
        repo.candidates(RepoSource(type="repo", path=path))
    with pytest.raises(SourceError, match=r"git bundle .*two\.bundle has no HEAD; set range to one of its branches"):
        git_history.fingerprint(GitSource(type="git", path=path))
    assert len(list(git_history.read(GitSource(type="git", path=path, range="storm-log")))) == 7
    docs, _ = read_repo(RepoSource(type="repo", path=path, ref="storm-log"))
    assert docs["README.md"].metadata["commit"] == git(root, "rev-parse", "storm-log").strip()


def test_paths_that_are_not_bundles_are_clear_errors(bundled, tmp_path):
    root, _ = bundled
    (tmp_path / "notes.bundle").write_text("# not a bundle\n")
    for kind, src in (("repo", RepoSource(type="repo", path=tmp_path / "notes.bundle")),
                      ("git", GitSource(type="git", path=tmp_path / "notes.bundle"))):
        with pytest.raises(SourceError, match=rf"{kind} path .*notes\.bundle is not a folder or a git bundle"):
            fingerprint([src])
    with pytest.raises(SourceError, match=r"git path .*missing\.bundle is not a folder"):
        fingerprint([GitSource(type="git", path=tmp_path / "missing.bundle")])
    incremental = make_bundle(root, tmp_path / "part.bundle", "v0.2..main")
    with pytest.raises(SourceError, match=r"part\.bundle is incremental: it needs 1 commit\(s\) it does not hold"):
        repo.candidates(RepoSource(type="repo", path=incremental))
    damaged = tmp_path / "damaged.bundle"
    damaged.write_bytes(make_bundle(root, tmp_path / "whole.bundle").read_bytes()[:400])
    with pytest.raises(SourceError, match=r"bundle .*damaged\.bundle cannot be read: git clone failed"):
        git_history.fingerprint(GitSource(type="git", path=damaged))


def test_one_clone_per_content_removed_when_the_process_ends(bundled, tmp_path):
    root, path = bundled
    first = bundle.root_of(path, "repo")
    copy = tmp_path / "copy.bundle"
    copy.write_bytes(path.read_bytes())
    assert bundle.root_of(copy, "git") == first  # same bytes, same clone
    assert git(first, "rev-parse", "HEAD") == git(root, "rev-parse", "HEAD")
    script = ("import sys; from pathlib import Path; from knowtune.sources import bundle; "
              "print(bundle.root_of(Path(sys.argv[1]), 'repo'))")
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True)
    made = Path(out.stdout.strip())
    assert made.name and not made.exists() and not made.parent.exists()


# --- the corpus that ships with knowtune ---------------------------------------------------------------------


def test_corpus_bundle_ingests_whole_through_the_cli(tmp_path):
    config = tmp_path / "corpus.yaml"
    config.write_text(f"name: corpus\nruns_dir: {tmp_path / 'runs'}\nsources:\n"
                      f"  - {{type: repo, path: {CORPUS_BUNDLE}}}\n"
                      f"  - {{type: git, path: {CORPUS_BUNDLE}, last: 100}}\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-m", "knowtune", "ingest", str(config)], capture_output=True, text=True,
                         env=env, cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    out = tmp_path / "runs" / "corpus" / "documents"
    assert (out / "skipped.jsonl").read_text() == ""
    manifest = json.loads((out / "manifest.json").read_text())
    counts = manifest["counts"]
    assert counts["by_kind"] == {"code": 20, "doc": 10, "change": 37}
    assert counts["skipped"] == 0
    # Only the commit author's name and e-mail, which are metadata, are pseudonymised: no text is redacted.
    assert counts["redacted"] == {"git:brindlemark.bundle": {"person": 37, "email": 37}}
    docs = [json.loads(line) for line in (out / "documents.jsonl").read_text().splitlines()]
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(CORPUS_BUNDLE), str(clone)], check=True)
    for doc in docs:
        if doc["kind"] != "change":
            assert doc["text"] == (clone / doc["path"]).read_text(), doc["path"]
        assert "<SECRET:" not in doc["text"] and "<PII:" not in doc["text"] and "@example.invalid" not in doc["text"]


def test_rebuilding_the_corpus_gives_the_committed_head(tmp_path):
    out = tmp_path / "rebuilt.bundle"
    res = subprocess.run([sys.executable, str(CORPUS / "build_corpus.py"), str(out)], capture_output=True, text=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert res.returncode == 0, res.stderr
    heads = subprocess.run(["git", "bundle", "list-heads", str(CORPUS_BUNDLE), "HEAD"], capture_output=True,
                           text=True, check=True).stdout.split()
    assert res.stdout.strip() == heads[0]
    rebuilt = subprocess.run(["git", "bundle", "list-heads", str(out)], capture_output=True, text=True, check=True)
    committed = subprocess.run(["git", "bundle", "list-heads", str(CORPUS_BUNDLE)], capture_output=True, text=True,
                               check=True)
    assert rebuilt.stdout == committed.stdout  # main, HEAD and the three release tags
