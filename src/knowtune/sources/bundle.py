"""A git bundle as a source: a whole repository in one file (`git bundle create FILE --all`), read through a clone.

git reads a bundle only by cloning or fetching from it, so a bundle is cloned
(bare: there is no working tree to check out) into a temporary folder, once per
process and content: the fingerprint, the file list and the read of one ingest,
and a repo and a git source naming the same bundle, share one clone. The clone
is made from a private copy of the file whose bytes are hashed on the way, so
the clone is exactly the content it is filed under even if the bundle is
rewritten meanwhile. All clones live in one temporary folder removed when the
process exits; a run killed outright leaves it in the system's temporary
folder like any other temporary file, and nothing is ever read from an old one.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import BinaryIO

from .gitcmd import SourceError

# What `git bundle create` writes on its first line (v3 when it records capabilities, e.g. an object format).
SIGNATURES = (b"# v2 git bundle\n", b"# v3 git bundle\n")
_CHUNK = 1 << 20
# A header line is a ref ("<sha> refs/heads/main") or a prerequisite; a longer one means a damaged file.
_HEADER_LINE = 64 * 1024

_clones: dict[str, Path] = {}  # sha256 of a bundle's bytes -> its bare clone, in this process
_parent: list[Path] = []  # the one folder holding this process's clones (a list: made on first use)


def is_bundle(path: Path) -> bool:
    """Whether `path` is a file that opens as a git bundle does; a folder or a missing path is not."""
    try:
        with _open_regular(path) as fh:
            return fh.read(len(SIGNATURES[0])) in SIGNATURES
    except (OSError, ValueError):
        return False


def root_of(path: Path, what: str) -> Path:
    """The repository git runs in for a source's `path`: the folder itself, or the bundle's bare clone.

    `what` names the source kind ("repo", "git") in the error for a path that is neither.
    """
    if path.is_dir():
        return path
    if not path.exists():
        raise SourceError(f"sources: {what} path {path} is not a folder")
    if not is_bundle(path):
        raise SourceError(f"sources: {what} path {path} is not a folder or a git bundle "
                          "(a file written by `git bundle create`)")
    return clone(path)


def clone(path: Path) -> Path:
    """The bare clone of the bundle at `path`, made on first use for its content and kept until the process exits."""
    parent = _clone_parent()
    fd, name = tempfile.mkstemp(dir=parent, suffix=".bundle")
    os.close(fd)
    incoming = Path(name)
    try:
        digest = _copy_hashing(path, incoming)
        known = _clones.get(digest)
        if known is not None and known.is_dir():
            return known
        _check_complete(path, incoming)
        dest = parent / digest[:16]
        shutil.rmtree(dest, ignore_errors=True)  # a clone that failed halfway earlier in this process
        # --mirror: every ref the bundle holds (branches, tags) under its own name, and HEAD as the bundle has it.
        # The path is absolute, so git never reads "host:file" as a remote to connect to.
        res = subprocess.run(["git", "clone", "--quiet", "--mirror", "--", str(incoming.resolve()), str(dest)],
                             capture_output=True)
        if res.returncode != 0:
            shutil.rmtree(dest, ignore_errors=True)
            msg = res.stderr.decode("utf-8", "replace").strip().splitlines()
            raise SourceError(f"sources: bundle {path} cannot be read: git clone failed"
                              + (f" ({msg[-1]})" if msg else ""))
        _settle_head(dest)
        _clones[digest] = dest
        return dest
    finally:
        incoming.unlink(missing_ok=True)


def _copy_hashing(path: Path, dest: Path) -> str:
    h = hashlib.sha256()
    try:
        with _open_regular(path) as src, open(dest, "wb") as out:
            size = os.fstat(src.fileno()).st_size
            copied, left = 0, size + 1  # one byte more than its size tells a file that grew while it was read
            while left and (chunk := src.read(min(_CHUNK, left))):
                h.update(chunk)
                out.write(chunk)
                copied, left = copied + len(chunk), left - len(chunk)
    except (OSError, ValueError) as err:
        raise SourceError(f"sources: bundle {path} cannot be read: {err}") from None
    if copied != size:
        raise SourceError(f"sources: bundle {path} changed while it was read ({size} bytes, then {copied})")
    return h.hexdigest()


def _open_regular(path: Path) -> BinaryIO:
    """`path` opened for reading if it is a regular file; ValueError if it is something else.

    O_NONBLOCK: a path swapped for a named pipe after it was checked must not block the open waiting for a writer.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ValueError("not a regular file")
    return os.fdopen(fd, "rb")


def _check_complete(path: Path, copy: Path) -> None:
    """A bundle made from part of a history (`git bundle create f v1..v2`) needs commits it does not hold."""
    needs = 0
    with open(copy, "rb") as fh:
        fh.readline()  # the signature
        while (line := fh.readline(_HEADER_LINE)) != b"\n":  # capabilities (@), prerequisites (-), refs
            if not line.endswith(b"\n"):
                raise SourceError(f"sources: bundle {path} cannot be read: its header is damaged")
            needs += line.startswith(b"-")
    if needs:
        raise SourceError(f"sources: bundle {path} is incremental: it needs {needs} commit(s) it does not hold; "
                          "write a complete one with `git bundle create FILE --all`")


def _settle_head(root: Path) -> None:
    """Point HEAD at the only branch of a bundle made without HEAD (`git bundle create f main`).

    With several branches and no HEAD there is no snapshot to choose; HEAD stays
    unborn and a source without a ref says so.
    """
    if _git_ok(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}"):
        return
    heads = branches(root)
    if len(heads) == 1:
        subprocess.run(["git", "-C", str(root), "symbolic-ref", "HEAD", f"refs/heads/{heads[0]}"], capture_output=True)


def branches(root: Path) -> list[str]:
    """The branch names of the repository at `root`."""
    out = subprocess.run(["git", "-C", str(root), "for-each-ref", "--format=%(refname)", "refs/heads/"],
                         capture_output=True, text=True).stdout
    return [ref.removeprefix("refs/heads/") for ref in out.split()]


def _git_ok(root: Path, *args: str) -> bool:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True).returncode == 0


def _clone_parent() -> Path:
    if not _parent or not _parent[0].is_dir():
        _parent[:] = [Path(tempfile.mkdtemp(prefix="knowtune-bundles-"))]
        _clones.clear()
        atexit.register(_remove, _parent[0], os.getpid())
    return _parent[0]


def _remove(folder: Path, pid: int) -> None:
    # A forked worker inherits this hook: only the process that made the folder removes it.
    if os.getpid() == pid:
        shutil.rmtree(folder, ignore_errors=True)
