"""A repository's change history: one document per commit, with its message, files and diff.

The repository is a folder or a git bundle (one file, read through a clone: see bundle.py).
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path
from typing import Iterator

from ..config import GitSource
from ..records import Document, Skipped, stable_id
from . import bundle
from .gitcmd import SourceError, git
from .git_diffs import BIG_FILES, diffs
from .guard import guarded

# Fields of one commit header, separated by \x1f, commits by \x1e.
_HEADER = "%H%x1f%aI%x1f%an%x1f%ae%x1f%P%x1f%s%x1f%b%x1e"


def label(src: GitSource) -> str:
    return f"git:{src.path.name}"


def _root(src: GitSource) -> Path:
    """Where git runs: the folder, or the bundle's clone (a clear error for a path that is neither)."""
    return bundle.root_of(src.path, "git")


def _revisions(src: GitSource) -> list[str]:
    """git log arguments choosing the commits: the range, with `last` as a cap on top of it."""
    return ([f"-n{src.last}"] if src.last else []) + [src.range or "HEAD"]


def _resolve(src: GitSource) -> str:
    """The commits the range's ends name (git rev-parse output); a clear error when they name none."""
    root = _root(src)
    rev = src.range or "HEAD"
    res = None if rev.startswith("-") else subprocess.run(
        ["git", "-C", str(root), "rev-parse", rev, "--"], capture_output=True)
    if res is None or res.returncode != 0:
        if src.range is None and root != src.path:  # a bundle of several branches that names none as its HEAD
            raise SourceError(f"sources: git bundle {src.path} has no HEAD; set range to one of its branches "
                              f"({', '.join(bundle.branches(root)) or 'it has none'})")
        why = res.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] if res else []
        what = f"range {rev!r} names no commits (expected a branch, tag or A..B)" if src.range else "no commits"
        raise SourceError(f"sources: git {src.path}: {what}" + (f" ({why[0]})" if why else ""))
    return res.stdout.decode()


def fingerprint(src: GitSource) -> str:
    # The commits the range names (both ends), not HEAD: v1.0..v2.0 does not change when HEAD moves.
    ends = _resolve(src)
    return hashlib.sha256(ends.encode()).hexdigest()[:16] + f":{src.range}:{src.last}:{src.max_diff_chars}"


def read(src: GitSource) -> Iterator[Document | Skipped]:
    _resolve(src)
    root = _root(src)
    source = label(src)
    headers = git(root, "log", *_revisions(src), f"--format={_HEADER}", "--")
    numstat = _numstats(src, root)
    patches = diffs(root, _revisions(src), src.max_diff_chars)
    for block in headers.split("\x1e"):
        block = block.strip("\n")
        if block:
            sha = block.split("\x1f", 1)[0]
            yield guarded(sha, source, lambda block=block: _commit(src, root, source, block, numstat, patches))


def _commit(src: GitSource, root: Path, source: str, block: str, numstat: dict, patches: dict) -> Document:
    sha, date, author, email, parents, subject, body = block.split("\x1f")
    files = numstat.get(sha, [])
    diff, length = patches.get(sha, ("", 0))
    merge = len(parents.split()) > 1
    metadata = {"commit": sha, "date": date, "title": subject, "author": author, "author_email": email,
                "merge": merge}
    if merge:
        # git log shows no diff for a merge; what it brought in is its difference from the first parent.
        files = _merge_files(root, sha)
        metadata["merged_branch"] = merged_branch(subject)
    metadata["files"] = [f["path"] for f in files]
    text = render(sha, date[:10], subject, body.strip(), files, diff, src.max_diff_chars, merge, length)
    return Document(id=stable_id(source, sha), source=source, path=sha, kind="change", text=text,
                    metadata=metadata)


def render(sha, date, subject, body, files, diff, limit, merge, length=None) -> str:
    """The commit as text; `diff` may be only the start of a diff `length` characters long (at least `limit`)."""
    lines = [f"commit {sha[:12]}", f"Date: {date}", "", subject]
    if body:
        lines += ["", body]
    if merge:
        branch = merged_branch(subject)
        what = f"it merges branch {branch}" if branch else "it joins two lines of history"
        lines += ["", f"Merge commit: {what}; its changes are in the commits it merges. "
                      "The files below differ from the first parent."]
    if files and merge:
        lines += ["", "Files changed:"] + [f"  {f['path']} ({f['status']})" for f in files]
    elif files:
        lines += ["", "Files changed:"] + [f"  {f['path']} (+{f['added']} -{f['deleted']})" for f in files]
    length = len(diff) if length is None else length
    if diff.strip():
        if length > limit:
            cut = diff.rfind("\n", 0, limit) + 1 or limit
            diff = diff[:cut] + f"[... diff truncated: {length - cut} more characters ...]\n"
        lines += ["", "Diff:", diff.rstrip("\n")]
    return "\n".join(lines) + "\n"


def _numstats(src: GitSource, root: Path) -> dict[str, list[dict]]:
    # With git's big-file threshold a huge file is counted as binary ("-") instead of diffed line by line.
    out = git(root, "-c", BIG_FILES, "log", *_revisions(src), "--numstat", "--format=%x1e%H", "--")
    stats: dict[str, list[dict]] = {}
    for block in out.split("\x1e")[1:]:
        lines = block.strip("\n").split("\n")
        entries = []
        for line in lines[1:]:
            parts = line.split("\t")
            if len(parts) == 3:
                added, deleted, path = parts
                entries.append({"path": path, "added": added, "deleted": deleted})
        stats[lines[0].strip()] = entries
    return stats


_STATUS = {"A": "added", "M": "modified", "D": "deleted", "R": "renamed", "C": "copied", "T": "type changed"}
# Subjects git and the forges write for merges: "Merge branch 'x' into main", "Merge pull request #3 from o/x",
# "Merge remote-tracking branch 'origin/x'", "Merge tag 'v1.0'".
_MERGE_SUBJECT = re.compile(
    r"^Merge (?:(?:remote-tracking )?branch(?:es)? '(?P<branch>[^']+)'|tag '(?P<tag>[^']+)'|"
    r"pull request #\d+ from (?P<pr>\S+))"
)


def merged_branch(subject: str) -> str | None:
    """The branch (or tag) a merge commit's subject says it merged, or None."""
    m = _MERGE_SUBJECT.match(subject)
    return next((v for v in m.groupdict().values() if v), None) if m else None


def _merge_files(root: Path, sha: str) -> list[dict]:
    out = git(root, "diff", "--name-status", "-z", f"{sha}^1", sha, "--")
    fields = out.split("\0")
    files, i = [], 0
    while i < len(fields) and fields[i]:
        status = fields[i]
        if status[0] in "RC":  # renames and copies name the old path, then the new one
            old, new = fields[i + 1], fields[i + 2]
            files.append({"path": new, "status": f"{_STATUS[status[0]]} from {old}"})
            i += 3
        else:
            files.append({"path": fields[i + 1], "status": _STATUS.get(status[0], status)})
            i += 2
    return files
