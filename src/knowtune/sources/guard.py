"""Reading one file without letting it end the run: the checks before a read, and a guard around it.

A folder can hold anything: named pipes, symlink loops, files rewritten while
they are read, pages nested past a parser's recursion limit, PDFs that make
their parser talk. Whatever goes wrong with one file becomes that file's skip
reason and whatever a library says while reading it stays off the console;
only a broken source (SourceError) stops ingest.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from ..records import Skipped
from .gitcmd import SourceError

T = TypeVar("T")

# The reason the generic guard gives opens with this, then names the exception: a file that ends here has no
# reason of its own yet, or met a bug in knowtune, and tests can tell the two from what it names.
GUARD_REASON = "reader failed"

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


class Unreadable(ValueError):
    """A file that is not read; the message is the skip reason."""


def regular_file(path: Path) -> os.stat_result:
    """The stat of the regular file `path` names (symlinks followed), or Unreadable saying what it is instead."""
    try:
        st = path.stat()
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise Unreadable("symlink loop") from None
        if err.errno == errno.ENOENT and path.is_symlink():
            raise Unreadable("broken symlink (its target does not exist)") from None
        raise Unreadable(f"unreadable ({err.strerror or type(err).__name__})") from None
    if not stat.S_ISREG(st.st_mode):
        # Opening a named pipe waits for a writer and a device never ends: neither is read.
        kind = next((name for is_kind, name in _KINDS if is_kind(st.st_mode)), "not a file")
        raise Unreadable(f"not a regular file ({kind})")
    return st


def read_checked(path: Path, size: int) -> bytes:
    """The bytes of a file whose size was checked as `size`; Unreadable if it is not that size when read.

    At most size + 1 bytes are read, so a file that grew after its size was
    checked costs no more memory than the check allowed.
    """
    try:
        # O_NONBLOCK: a file swapped for a named pipe since its stat must not block the open waiting for a writer.
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise Unreadable("changed while read (no longer a regular file)")
            data = fh.read(size + 1)
    except OSError as err:
        raise Unreadable(f"unreadable ({err.strerror or type(err).__name__})") from None
    if len(data) != size:
        now = f"more than {size}" if len(data) > size else str(len(data))
        raise Unreadable(f"changed while read ({size} bytes when its size was checked, {now} when read)")
    return data


def content_digest(path: Path, cap: int) -> str:
    """What stands for a file's content in a fingerprint: its hash, or its size or skip reason when unread."""
    try:
        size = regular_file(path).st_size
        return hashlib.sha256(read_checked(path, size)).hexdigest() if size <= cap else f"size:{size}"
    except Unreadable as err:
        return f"unread:{err}"


def guarded(path: str, source: str, read: Callable[[], T]) -> T | Skipped:
    """What `read` gives for one file, or that file's skip: nothing it raises ends the run, nothing is printed."""
    with listening() as said:
        try:
            return read()
        except Unreadable as err:
            return Skipped(path, str(err), source)
        except SourceError:
            raise  # the source itself is broken (a git command failed): one error for the run, not a skip per file
        except Exception as err:  # any kind, RecursionError and MemoryError included: the reason names it
            heard = f"; {said[0]}" if said else ""
            return Skipped(path, f"{GUARD_REASON} ({type(err).__name__}: {first_line(err)}{heard})", source)


@contextmanager
def listening() -> Iterator[list[str]]:
    """Collect what libraries say during the block (warnings, log records) instead of printing it.

    Scoped to the block and restored after it, not process-wide: a parser
    reading a damaged file talks ("EOF marker not found"), and what it says
    belongs in that file's skip reason, not on the console between
    knowtune's own lines.
    """
    said: list[str] = []
    handler = _Collect(said)
    # On the root logger, so a library's logger with no handler of its own reaches this one instead of
    # logging's last-resort handler, which prints to stderr.
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        # catch_warnings restores showwarning on exit; entering it also resets "once per place" memory,
        # so the same warning from the next file is heard again. The filters are left as they are.
        with warnings.catch_warnings():
            shown = warnings.showwarning

            def hear(message, category, filename, lineno, file=None, line=None):
                if issubclass(category, (DeprecationWarning, PendingDeprecationWarning)):
                    # Meant for developers, not about the file: where it goes anyway (nowhere outside tests).
                    shown(message, category, filename, lineno, file, line)
                else:
                    said.append(f"{category.__name__}: {first_line(message)}")

            warnings.showwarning = hear
            yield said
    finally:
        root.removeHandler(handler)


class _Collect(logging.Handler):
    def __init__(self, said: list[str]):
        super().__init__(logging.WARNING)
        self.said = said

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # The package, not the module: "pypdf: EOF marker not found", not "pypdf._reader: ...".
            self.said.append(f"{record.name.split('.')[0]}: {first_line(record.getMessage())}")
        except Exception:  # a record whose arguments do not format: it says nothing worth a reason
            pass


def first_line(what: object, limit: int = 200) -> str:
    lines = str(what).strip().splitlines()
    return lines[0][:limit] if lines else ""
