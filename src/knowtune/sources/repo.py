"""A code repository as a snapshot of its files: one document per file.

The snapshot is the working tree as it is now (ref: None), or a branch, tag or
commit read straight from git's object store: no checkout, so the working
tree, and whatever the user has uncommitted in it, is never touched. A git
bundle (one file, see bundle.py) has no working tree: ref None reads its HEAD.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from ..config import RepoSource
from ..records import Document, Skipped, stable_id
from . import bundle
from .files import (decode_text, glob_filter, is_doc, is_git_worktree, language_of, list_files,
                    skip_reason_by_name)
from .gitcmd import SourceError, git, head_date
from .guard import content_digest, guarded, read_checked, regular_file
from .notebook import NotebookError, to_percent

# A notebook's file is mostly outputs (plots as base64), which are dropped; its size cap
# applies to the text kept, and the file itself may be this many times larger.
NOTEBOOK_FILE_FACTOR = 50


def label(src: RepoSource) -> str:
    return f"repo:{src.path.name}" + (f"@{src.ref}" if src.ref else "")


def candidates(src: RepoSource) -> tuple[list[str], list[Skipped]]:
    root = bundle.root_of(src.path, "repo")
    listed = list_files(root) if _snapshot_ref(src) is None else list(_tree(root, resolve(src)))
    kept, excluded = glob_filter(listed, src.include, src.exclude)
    skipped = [Skipped(p, "excluded by include/exclude globs", label(src)) for p in excluded]
    return kept, skipped


def fingerprint(src: RepoSource) -> str:
    """Content hash of every candidate file (not modification times: a touched file is unchanged)."""
    if _snapshot_ref(src) is not None:
        # A commit's content never changes, so its sha stands for it; the settings choose what of it is read.
        settings = json.dumps([src.include, src.exclude, src.max_file_bytes])
        return resolve(src)[:16] + ":" + hashlib.sha256(settings.encode()).hexdigest()[:8]
    h = hashlib.sha256(f"{head_date(src.path)}".encode())
    for rel in candidates(src)[0]:
        h.update(f"{rel}\x1f{content_digest(src.path / rel, _cap(rel, src.max_file_bytes))}\n".encode())
    return h.hexdigest()[:16]


def read(src: RepoSource, paths: list[str]) -> Iterator[Document | Skipped]:
    source = label(src)
    if _snapshot_ref(src) is None:
        date = head_date(src.path) or _newest_mtime(src.path, paths)
        for rel in paths:
            yield guarded(rel, source, lambda rel=rel: _from_worktree(src, rel, {"date": date}))
        return
    root = bundle.root_of(src.path, "repo")
    sha = resolve(src)
    meta = {"date": git(root, "log", "-1", "--format=%cs", sha).strip(), "commit": sha}
    tree = _tree(root, sha)
    with _BlobReader(root) as blobs:
        for rel in paths:
            mode, oid, size = tree[rel]
            if mode == "120000":
                yield Skipped(rel, "symlink", source)
                continue
            yield guarded(rel, source, lambda rel=rel, oid=oid, size=size: _document(
                src, rel, size, lambda: blobs.read(oid), meta))


def _from_worktree(src: RepoSource, rel: str, meta: dict) -> Document | Skipped:
    # The size is checked before anything is read, and the read gets exactly that many bytes or a skip.
    path = src.path / rel
    size = regular_file(path).st_size
    return _document(src, rel, size, lambda: read_checked(path, size), meta)


def _document(src: RepoSource, rel: str, size: int, load: Callable[[], bytes], meta: dict) -> Document | Skipped:
    source = label(src)
    text, language, reason = _text_of(rel, size, load, src.max_file_bytes)
    if reason is not None:
        return Skipped(rel, reason, source)
    doc = is_doc(rel)
    metadata = {**meta, "programming_language": None if doc else language}
    if doc:
        metadata["title"] = title_of(text, rel)
        metadata["natural_language"] = None  # filled by language id (curate)
    return Document(
        id=stable_id(source, rel), source=source, path=rel, kind="doc" if doc else "code", text=text,
        metadata=metadata,
    )


def _text_of(rel: str, size: int, load: Callable[[], bytes], max_bytes: int) -> tuple[str | None, ...]:
    """(text, programming language, None) for a file worth reading, or (None, None, reason) for one to skip."""
    reason = skip_reason_by_name(rel)
    if reason is not None:
        return None, None, reason
    notebook = rel.lower().endswith(".ipynb")
    cap = _cap(rel, max_bytes)
    if size > cap:
        return None, None, f"too large ({size} bytes > {cap})"
    if not notebook:
        text, reason = decode_text(load())
        return text, language_of(rel), reason
    try:
        text, language = to_percent(load())
    except NotebookError as err:
        return None, None, str(err)
    kept = len(text.encode("utf-8"))
    if kept > max_bytes:
        return None, None, f"too large ({kept} bytes of cells without outputs > {max_bytes})"
    return (text, language, None) if text.strip() else (None, None, "empty")


def _cap(rel: str, max_bytes: int) -> int:
    """The largest file read: notebooks may be larger, their cap applies to the text kept."""
    return max_bytes * NOTEBOOK_FILE_FACTOR if rel.lower().endswith(".ipynb") else max_bytes


# --- a snapshot from git ----------------------------------------------------


def resolve(src: RepoSource) -> str:
    """The commit sha `src.ref` names; a clear error when it names none."""
    ref = _snapshot_ref(src) or "HEAD"
    root = bundle.root_of(src.path, "repo")
    if root == src.path and not is_git_worktree(root):
        raise SourceError(f"sources: repo {src.path} is not a git repository, so ref {ref!r} cannot be read")
    # A ref starting with "-" would be taken for an option.
    res = None if ref.startswith("-") else subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], capture_output=True
    )
    if res is None or res.returncode != 0:
        if src.ref is None and root != src.path:  # a bundle of several branches that names none as its HEAD
            raise SourceError(f"sources: repo bundle {src.path} has no HEAD; set ref to one of its branches "
                              f"({', '.join(bundle.branches(root)) or 'it has none'})")
        raise SourceError(f"sources: repo {src.path} has no branch, tag or commit {ref!r}")
    return res.stdout.decode().strip()


def _snapshot_ref(src: RepoSource) -> str | None:
    """The ref read from git's object store, or None for the working tree, which a bundle does not have."""
    if src.ref is None and not src.path.is_dir() and bundle.is_bundle(src.path):
        return "HEAD"
    return src.ref


def _tree(root: Path, sha: str) -> dict[str, tuple[str, str, int]]:
    """path -> (mode, blob id, size) of every file in the commit, relative to `root` (as ls-files in a subfolder)."""
    out = git(root, "ls-tree", "-r", "-z", "-l", sha).split("\0")
    tree = {}
    for entry in out:
        if not entry:
            continue
        meta, path = entry.split("\t", 1)
        mode, kind, oid, size = meta.split()
        if kind == "blob":  # submodules ("commit") have no content here, as in the working tree
            tree[path] = (mode, oid, int(size))
    return tree


class _BlobReader:
    """One `git cat-file --batch` process answering blob ids one at a time, so no file is held longer than needed."""

    def __init__(self, root: Path):
        self.root = root

    def __enter__(self) -> "_BlobReader":
        self.proc = subprocess.Popen(
            ["git", "-C", str(self.root), "cat-file", "--batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        return self

    def read(self, oid: str) -> bytes:
        self.proc.stdin.write(f"{oid}\n".encode())
        self.proc.stdin.flush()
        header = self.proc.stdout.readline().decode().split()
        if len(header) != 3:
            raise SourceError(f"sources: repo {self.root}: git cat-file could not read object {oid}")
        data = self.proc.stdout.read(int(header[2]))
        self.proc.stdout.read(1)  # the newline after each object
        return data

    def __exit__(self, *exc) -> None:
        self.proc.stdin.close()
        self.proc.wait()


_MD_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
_RST_TITLE = re.compile(r"^(?P<title>[^\n]+)\n(?P<rule>[=\-~^\"'`#*+]{3,})\s*$", re.M)


def title_of(text: str, path: str) -> str:
    """The page's first heading, or its file name."""
    for pattern, group in ((_MD_HEADING, 1), (_RST_TITLE, "title")):
        m = pattern.search(text)
        if m:
            return m.group(group).strip()
    return Path(path).stem.replace("_", " ").replace("-", " ")


def _newest_mtime(root: Path, paths: list[str]) -> str:
    # lstat: a broken symlink or a loop among the paths has a time too, and is skipped later with its reason.
    newest = max((os.lstat(root / p).st_mtime for p in paths if os.path.lexists(root / p)), default=0)
    return datetime.fromtimestamp(newest, tz=timezone.utc).strftime("%Y-%m-%d")

