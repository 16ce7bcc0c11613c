"""Where each file's part of a change's diff is, so that part can follow its file.

A commit or pull request is one document, but its diff holds hunks of many
files. When a file is held out for validation or test, its hunks must not be
trained through the change that touched it: the chunker cuts a change at every
file's `diff --git a/P b/P` header, so a chunk holds one file's part at most,
and names that file (`diff_of`) for the split to follow.

Both sources write this header (git_history from git itself, pull_requests for
each file's patch), after the document's "Diff:" line; a hunk's own lines
start with " ", "+", "-" or "\\", so a header is never mistaken for one.
"""

from __future__ import annotations

import re

MARKER = "\nDiff:\n"
# git quotes a path with unusual characters ("a/na\303\257ve.py"); those keep their quotes and escapes here,
# which is enough to tell files apart.
_HEADER = re.compile(r'^diff --git ("?)a/(.+?)\1 ("?)b/(.+?)\3$', re.M)


def diff_sections(text: str) -> list[tuple[str, int, int]]:
    """(path, start, end) of each file's part of the diff in a change document's text, in order."""
    at = text.find(MARKER)
    if at < 0:
        return []
    heads = list(_HEADER.finditer(text, at + len(MARKER)))
    ends = [m.start() for m in heads[1:]] + [len(text)]
    # The new path: a renamed file's hunks belong to the file as it is now.
    return [(m.group(4), m.start(), end) for m, end in zip(heads, ends)]


def section_of(sections: list[tuple[str, int, int]], start: int, end: int, text: str) -> str | None:
    """The path whose part of the diff the span [start, end) lies in, or None (the message, or no diff)."""
    for path, s, e in sections:
        # A cut falls on a token start, which may take the newline before a header: whitespace does not count.
        lo = start + len(text[start:end]) - len(text[start:end].lstrip())
        if s <= lo and end <= e:
            return path
    return None
