"""A repository's change history: one document per commit, with its message, files and diff."""

from __future__ import annotations

from typing import Iterator

from ..config import GitSource
from ..records import Document, stable_id
from .gitcmd import SourceError, git

# Fields of one commit header, separated by \x1f, commits by \x1e.
_HEADER = "%H%x1f%aI%x1f%an%x1f%ae%x1f%P%x1f%s%x1f%b%x1e"


def label(src: GitSource) -> str:
    return f"git:{src.path.name}"


def _check(src: GitSource) -> None:
    if not src.path.is_dir():
        raise SourceError(f"sources: git path {src.path} is not a folder")


def fingerprint(src: GitSource) -> str:
    _check(src)
    return git(src.path, "rev-parse", "HEAD").strip()[:16] + f":{src.last}:{src.max_diff_chars}"


def read(src: GitSource) -> Iterator[Document]:
    _check(src)
    source = label(src)
    headers = git(src.path, "log", f"-n{src.last}", f"--format={_HEADER}")
    numstat = _numstats(src)
    patches = _patches(src)
    for block in headers.split("\x1e"):
        block = block.strip("\n")
        if not block:
            continue
        sha, date, author, email, parents, subject, body = block.split("\x1f")
        files = numstat.get(sha, [])
        diff = patches.get(sha, "")
        merge = len(parents.split()) > 1
        text = render(sha, date[:10], subject, body.strip(), files, diff, src.max_diff_chars, merge)
        yield Document(
            id=stable_id(source, sha), source=source, path=sha, kind="change", text=text,
            metadata={
                "commit": sha, "date": date, "title": subject, "author": author, "author_email": email,
                "files": [f["path"] for f in files], "merge": merge,
            },
        )


def render(sha, date, subject, body, files, diff, limit, merge) -> str:
    lines = [f"commit {sha[:12]}", f"Date: {date}", "", subject]
    if body:
        lines += ["", body]
    if merge:
        lines += ["", "Merge commit: it joins two lines of history; its changes are in the commits it merges."]
    if files:
        lines += ["", "Files changed:"] + [f"  {f['path']} (+{f['added']} -{f['deleted']})" for f in files]
    if diff.strip():
        if len(diff) > limit:
            cut = diff.rfind("\n", 0, limit) + 1 or limit
            diff = diff[:cut] + f"[... diff truncated: {len(diff) - cut} more characters ...]\n"
        lines += ["", "Diff:", diff.rstrip("\n")]
    return "\n".join(lines) + "\n"


def _numstats(src: GitSource) -> dict[str, list[dict]]:
    out = git(src.path, "log", f"-n{src.last}", "--numstat", "--format=%x1e%H")
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


def _patches(src: GitSource) -> dict[str, str]:
    out = git(src.path, "log", f"-n{src.last}", "-p", "--no-color", "--format=%x1e%H")
    patches = {}
    for block in out.split("\x1e")[1:]:
        sha, _, patch = block.partition("\n")
        patches[sha.strip()] = patch.strip("\n") + "\n" if patch.strip() else ""
    return patches
