"""The diffs of a history's commits, in bounded memory: huge files left out with a note, the rest streamed.

`git log -p` over a history holding one 100 MB file produced a patch of the
same size, which decoding and splitting copied several times over (a gigabyte
of memory for a file that is skipped everywhere else). Here no file larger
than DIFF_FILE_LIMIT reaches git's diff machinery: its `diff --git` header
stays, followed by a one-line note; and of each commit's diff only what can be
shown (max_diff_chars) is kept while the rest is counted.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from .gitcmd import SourceError, git

# A file whose old or new version is larger than this has its diff left out. Its diff would be cut at
# max_diff_chars anyway, and git holds both versions whole, and all their lines, to make it.
DIFF_FILE_LIMIT = 1_000_000
# The same limit for git's own counts (--numstat): a larger file is counted as binary ("-"), not diffed.
BIG_FILES = f"core.bigFileThreshold={DIFF_FILE_LIMIT}"
_NO_OBJECT = "0" * 40


def diffs(root: Path, revisions: list[str], limit: int) -> dict[str, tuple[str, int]]:
    """commit sha -> (its diff, of which at least the first `limit` characters; the whole diff's length)."""
    shas, big = _big_files(root, revisions)
    found = _stream(root, [sha for sha in shas if sha not in big], [], limit)
    for sha, files in big.items():
        # Left-out files first: a note is short, and ahead of the cut at `limit` it is always shown.
        notes = "".join(f"diff --git {_quote('a/' + old)} {_quote('b/' + new)}\n"
                        f"diff of {new} left out: {size} bytes\n" for old, new, size in files)
        diff, length = _stream(root, [sha], sorted({p for old, new, _ in files for p in (old, new)}), limit).get(
            sha, ("", 0))
        found[sha] = (notes + diff, len(notes) + length)
    return found


def _big_files(root: Path, revisions: list[str]) -> tuple[list[str], dict[str, list[tuple[str, str, int]]]]:
    """(every commit's sha, sha -> (old path, new path, larger size) of its files over DIFF_FILE_LIMIT).

    From `git log --raw`, which names the blobs a commit changes without reading them, and one
    `git cat-file --batch-check` for their sizes.
    """
    out = git(root, "log", *revisions, "--raw", "-z", "--no-abbrev", "--format=%x1e%H", "--")
    shas, changes = [], []
    for block in out.split("\x1e")[1:]:
        fields = block.split("\0")
        sha = fields[0].strip()
        shas.append(sha)
        i = 1
        while i < len(fields):
            meta = fields[i].strip("\n")
            if not meta.startswith(":"):
                i += 1
                continue
            _, _, old_oid, new_oid, status = meta[1:].split()
            two = status[0] in "RC"  # renames and copies name the old path, then the new one
            old, new = (fields[i + 1], fields[i + 2]) if two else (fields[i + 1], fields[i + 1])
            changes.append((sha, old, new, old_oid, new_oid))
            i += 3 if two else 2
    sizes = _sizes(root, {oid for *_, a, b in changes for oid in (a, b) if oid != _NO_OBJECT})
    big: dict[str, list[tuple[str, str, int]]] = {}
    for sha, old, new, old_oid, new_oid in changes:
        size = max(sizes.get(old_oid, 0), sizes.get(new_oid, 0))
        if size > DIFF_FILE_LIMIT:
            big.setdefault(sha, []).append((old, new, size))
    return shas, big


def _sizes(root: Path, oids: set[str]) -> dict[str, int]:
    if not oids:
        return {}
    res = subprocess.run(["git", "-C", str(root), "cat-file", "--batch-check=%(objectname) %(objectsize)"],
                         input="\n".join(sorted(oids)) + "\n", capture_output=True, text=True)
    sizes = {}
    for line in res.stdout.splitlines():
        oid, _, size = line.partition(" ")
        if size.isdigit():  # a submodule's commit is "missing" here: it has no size in this repository
            sizes[oid] = int(size)
    return sizes


def _stream(root: Path, shas: list[str], left_out: list[str], limit: int) -> dict[str, tuple[str, int]]:
    """The diffs of the commits `shas` (the paths `left_out` excluded), read line by line from one git log."""
    if not shas:
        return {}
    excludes = [":/", *(f":(top,literal,exclude){p}" for p in left_out)] if left_out else []
    # The prefixes are given so a user's diff.noprefix cannot drop the a/ b/ other code splits diffs by.
    cmd = ["git", "-C", str(root), "-c", BIG_FILES, "log", "--no-walk=unsorted", "--stdin", "-p", "--no-color",
           "--src-prefix=a/", "--dst-prefix=b/", "--format=%x1e%H", "--", *excludes]
    found: dict[str, tuple[str, int]] = {}
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors)
        # git reads every revision from stdin before it writes a line, so this cannot block on a full pipe.
        proc.stdin.write(("\n".join(shas) + "\n").encode())
        proc.stdin.close()
        sha, kept = None, _Kept(limit)
        for raw in proc.stdout:  # no line is longer than the largest file git diffs, DIFF_FILE_LIMIT
            if raw.startswith(b"\x1e"):  # no diff line starts with it: every one opens with " +-@\\" or a word
                if sha:
                    found[sha] = kept.result()
                sha, kept = raw[1:].strip().decode(), _Kept(limit)
            elif sha:
                kept.add(raw.decode("utf-8", "replace"))
        if sha:
            found[sha] = kept.result()
        if proc.wait() != 0:
            errors.seek(0)
            msg = errors.read().decode("utf-8", "replace").strip().splitlines()
            raise SourceError(f"{root}: git log -p failed: {msg[-1] if msg else proc.returncode}")
    return found


class _Kept:
    """The start of one commit's diff, up to a limit, and the length of all of it (blank lines around it dropped)."""

    def __init__(self, limit: int):
        self.limit, self.parts, self.kept, self.total, self.trailing = limit, [], 0, 0, 0

    def add(self, line: str) -> None:
        blank = not line.strip("\n")
        if blank and not self.total:
            return  # the blank line git writes between the commit line and its diff
        self.total += len(line)
        self.trailing = self.trailing + len(line) if blank else len(line) - len(line.rstrip("\n"))
        if self.kept <= self.limit:
            self.parts.append(line)
            self.kept += len(line)

    def result(self) -> tuple[str, int]:
        if not self.total:
            return "", 0
        length = self.total - self.trailing + 1  # as if stripped of trailing newlines, then ended by one
        text = "".join(self.parts)
        return (text.rstrip("\n") + "\n" if self.kept == self.total else text), length


def _quote(name: str) -> str:
    """A path as git writes it in a `diff --git` line: quoted, with octal escapes, when unusual (core.quotePath)."""
    raw = name.encode("utf-8", "surrogateescape")
    if not any(b < 0x20 or b >= 0x7F or b in b'"\\' for b in raw):
        return name
    named = {0x07: "\\a", 0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0B: "\\v", 0x0C: "\\f", 0x0D: "\\r",
             0x22: '\\"', 0x5C: "\\\\"}
    return '"' + "".join(named.get(b) or (chr(b) if 0x20 <= b < 0x7F else f"\\{b:03o}") for b in raw) + '"'
