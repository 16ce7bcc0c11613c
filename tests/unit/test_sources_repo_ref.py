"""Snapshots and history by git name: repo sources at a ref (with notebooks), git sources over a range."""

import json

import pytest

from conftest import git, make_repo
from knowtune.config import GitSource, RepoSource
from knowtune.records import Document, Skipped
from knowtune.sources import SourceError, git_history, repo


def read_repo(src: RepoSource) -> tuple[dict[str, Document], dict[str, str]]:
    paths, skipped = repo.candidates(src)
    items = list(repo.read(src, paths))
    docs = {d.path: d for d in items if isinstance(d, Document)}
    return docs, {s.path: s.reason for s in skipped + [s for s in items if isinstance(s, Skipped)]}


def test_ref_reads_the_committed_snapshot_and_leaves_the_working_tree_alone(tmp_path):
    root = make_repo(tmp_path / "r")
    (root / "README.md").write_text("# Lanterna\n\nAn uncommitted edit.\n")
    (root / "lanterna" / "draft.py").write_text("DRAFT = True\n")
    status = git(root, "status", "--porcelain")
    docs, skipped = read_repo(RepoSource(type="repo", path=root, ref="main", exclude=["lanterna/cli.py"]))
    assert "uncommitted edit" not in docs["README.md"].text
    assert "lanterna/draft.py" not in docs and "lanterna/draft.py" not in skipped
    assert docs["lanterna/pricing.py"].text == git(root, "show", "main:lanterna/pricing.py")
    sha = git(root, "rev-parse", "main").strip()
    assert docs["README.md"].metadata["commit"] == sha
    assert docs["README.md"].metadata["date"] == "2026-10-09"
    assert docs["lanterna/inventory.py"].metadata["programming_language"] == "python"
    assert docs["docs/deploy.md"].kind == "doc" and docs["docs/deploy.md"].metadata["title"] == "Deploying Lanterna"
    assert docs["README.md"].source == "repo:r@main"
    assert skipped["docs/logo.png"] == "binary" and skipped["package-lock.json"] == "lock file"
    assert skipped["lanterna/cli.py"].startswith("excluded")
    assert git(root, "status", "--porcelain") == status
    assert (root / "README.md").read_text() == "# Lanterna\n\nAn uncommitted edit.\n"


def test_an_older_commit_or_tag_is_that_snapshot(tmp_path):
    root = make_repo(tmp_path / "r")
    git(root, "tag", "v0.2", "HEAD~7")  # after the second commit
    docs, _ = read_repo(RepoSource(type="repo", path=root, ref="v0.2", max_file_bytes=2_000))
    assert sorted(docs) == [".gitignore", "README.md", "docs/pricing.md", "lanterna/__init__.py",
                            "lanterna/inventory.py", "lanterna/pricing.py"]
    assert {d.metadata["date"] for d in docs.values()} == {"2026-10-02"}


def test_size_cap_applies_to_blobs_too(tmp_path):
    root = make_repo(tmp_path / "r")
    _, skipped = read_repo(RepoSource(type="repo", path=root, ref="HEAD", max_file_bytes=300))
    assert skipped["lanterna/inventory.py"].startswith("too large")


def test_missing_ref_is_a_clear_error_naming_repo_and_ref(tmp_path):
    root = make_repo(tmp_path / "r")
    with pytest.raises(SourceError, match=r"repo .*/r has no branch, tag or commit 'v9\.9'"):
        repo.candidates(RepoSource(type="repo", path=root, ref="v9.9"))
    plain = make_repo(tmp_path / "plain", history=False)
    with pytest.raises(SourceError, match="not a git repository"):
        repo.fingerprint(RepoSource(type="repo", path=plain, ref="main"))


def test_ref_fingerprint_is_the_commit_and_settings(tmp_path):
    root = make_repo(tmp_path / "r")
    src = RepoSource(type="repo", path=root, ref="main")
    before = repo.fingerprint(src)
    (root / "README.md").write_text("edited, not committed\n")
    assert repo.fingerprint(src) == before
    assert repo.fingerprint(src.model_copy(update={"exclude": ["docs/**"]})) != before
    git(root, "commit", "-qam", "Edit the readme")
    assert repo.fingerprint(src) != before


# --- notebooks -------------------------------------------------------------


def test_notebook_reads_as_percent_format_code_without_outputs(tmp_path):
    root = make_repo(tmp_path / "r")
    docs, _ = read_repo(RepoSource(type="repo", path=root))
    nb = docs["notebooks/oil_usage.ipynb"]
    assert nb.kind == "code" and nb.metadata["programming_language"] == "python"
    assert nb.text.startswith("# %% [markdown]\n# # Oil use per night\n#\n# How long the store's oil lasts")
    assert "# %%\nfrom lanterna.weather import nights_left, oil_for_night\n" in nb.text
    assert "# %% [markdown]\n# ## The reserve\n" in nb.text
    for output in ("image/png", "iVBOR", "execution_count", "(2.0, 3.0)", "0 6", "outputs", "<Figure"):
        assert output not in nb.text, output


def test_notebook_language_from_metadata_and_unreadable_notebooks(tmp_path):
    root = make_repo(tmp_path / "r", history=False)
    r_nb = {"cells": [{"cell_type": "code", "source": "x <- 1", "outputs": [], "execution_count": 3}],
            "metadata": {"kernelspec": {"name": "ir", "language": "R"}}, "nbformat": 4, "nbformat_minor": 5}
    (root / "notebooks" / "rates.ipynb").write_text(json.dumps(r_nb))
    (root / "notebooks" / "broken.ipynb").write_text('{"cells": [')
    docs, skipped = read_repo(RepoSource(type="repo", path=root))
    assert docs["notebooks/rates.ipynb"].metadata["programming_language"] == "r"
    assert docs["notebooks/rates.ipynb"].text == "# %%\nx <- 1\n"
    assert skipped["notebooks/broken.ipynb"] == "unreadable notebook"


def test_notebook_at_a_ref(tmp_path):
    root = make_repo(tmp_path / "r")  # its history commits the notebook
    docs, _ = read_repo(RepoSource(type="repo", path=root, ref="HEAD", include=["notebooks/**"]))
    assert list(docs) == ["notebooks/oil_usage.ipynb"]
    assert "image/png" not in docs["notebooks/oil_usage.ipynb"].text


# --- git ranges and merges -----------------------------------------------------


@pytest.fixture
def branched(tmp_path):
    """The fixture history tagged v1.0 at its fifth of nine commits, then a branch merged back with --no-ff."""
    root = make_repo(tmp_path / "r")
    git(root, "tag", "v1.0", "HEAD~4")
    git(root, "checkout", "-q", "-b", "storm-log")
    (root / "lanterna" / "storms.py").write_text('"""The storm log."""\n\nSTORMS = []\n')
    git(root, "add", "lanterna/storms.py")
    git(root, "commit", "-qm", "Start a storm log", date="2026-10-08T12:00:00+00:00")
    (root / "docs" / "faq.md").write_text((root / "docs" / "faq.md").read_text() + "\n## Where are storms logged?\n")
    git(root, "commit", "-qam", "Say where storms are logged", date="2026-10-09T12:00:00+00:00")
    git(root, "checkout", "-q", "main")
    (root / "CHANGELOG.md").write_text((root / "CHANGELOG.md").read_text() + "\n- storm log\n")
    git(root, "commit", "-qam", "Note the storm log", date="2026-10-10T12:00:00+00:00")
    git(root, "merge", "-q", "--no-ff", "-m", "Merge branch 'storm-log'", "storm-log",
        date="2026-10-11T12:00:00+00:00")
    return root


def history(src: GitSource) -> dict[str, Document]:
    return {d.metadata["title"]: d for d in git_history.read(src)}


def test_range_limits_history_and_last_caps_it(branched):
    docs = history(GitSource(type="git", path=branched, range="v1.0..HEAD"))
    assert sorted(docs) == sorted([
        "Fill orders from the store and know the suppliers", "Keep thirty nightly reports in the archive",
        "Add keepers and their watches, and a notebook of oil use",
        "Add lamp room clients in JavaScript, TypeScript, Go, Java and Rust", "Start a storm log", "Say where storms are logged", "Note the storm log", "Merge branch 'storm-log'"])
    assert len(history(GitSource(type="git", path=branched, range="v1.0..HEAD", last=2))) == 2
    assert len(history(GitSource(type="git", path=branched))) == 13  # no range: the last 100


def test_merge_commit_names_the_branch_and_lists_its_files_without_a_diff(branched):
    merge = history(GitSource(type="git", path=branched, range="v1.0..HEAD"))["Merge branch 'storm-log'"]
    assert merge.metadata["merge"] is True and merge.metadata["merged_branch"] == "storm-log"
    assert "Merge commit: it merges branch storm-log;" in merge.text
    assert "Files changed:\n  docs/faq.md (modified)\n  lanterna/storms.py (added)\n" in merge.text
    assert merge.metadata["files"] == ["docs/faq.md", "lanterna/storms.py"]
    assert "Diff:" not in merge.text and "STORMS = []" not in merge.text


def test_merged_branch_from_subjects():
    assert git_history.merged_branch("Merge pull request #12 from ada-keeper/storm-oil") == "ada-keeper/storm-oil"
    assert git_history.merged_branch("Merge branch 'storm-oil' into main") == "storm-oil"
    assert git_history.merged_branch("Merge remote-tracking branch 'origin/rota'") == "origin/rota"
    assert git_history.merged_branch("Add the inventory core") is None


def test_range_fingerprint_follows_its_ends_and_bad_ranges_are_clear_errors(branched):
    src = GitSource(type="git", path=branched, range="v1.0..HEAD~1")
    before = git_history.fingerprint(src)
    (branched / "README.md").write_text("edited\n")
    git(branched, "commit", "-qam", "Edit")
    assert git_history.fingerprint(src) != before  # HEAD~1 moved
    fixed = GitSource(type="git", path=branched, range="v1.0..storm-log")
    pinned = git_history.fingerprint(fixed)
    git(branched, "commit", "-q", "--allow-empty", "-m", "Empty")
    assert git_history.fingerprint(fixed) == pinned  # HEAD moved, the range did not
    with pytest.raises(SourceError, match=r"range 'v9\.0\.\.HEAD' names no commits"):
        list(git_history.read(GitSource(type="git", path=branched, range="v9.0..HEAD")))
