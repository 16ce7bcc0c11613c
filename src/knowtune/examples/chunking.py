"""Token-bounded, structure-aware chunking.

A document is tokenised once with character offsets; chunks are cut only at
token starts (never mid-token, never inside a character), preferring, in order,
the start of a definition or heading, a blank line, any line, and only then
an arbitrary token. Each chunk knows its character span, its lines and what it
is about (the heading path or the first definition in it).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

# Lines that begin a unit worth keeping whole, by document kind.
_CODE_DEF = re.compile(
    r"^[ \t]*(?:@\w|(?:async\s+)?def\s|class\s|function\s|func\s|fn\s|pub\s|impl\s|struct\s|interface\s|"
    r"type\s|enum\s|module\s|export\s|public\s|private\s|protected\s|static\s|const\s\w+\s*=\s*(?:async\s*)?\()",
    re.M,
)
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)
_BLANK = re.compile(r"\n[ \t]*\n")
_SYMBOL = re.compile(r"^[ \t]*(?:async\s+)?(?:def|class|function|func|fn|struct|interface|type|enum)\s+([A-Za-z_]\w*)", re.M)

# A cut at a preferred boundary must still fill this share of the chunk;
# otherwise the next kind of boundary is tried (no tiny chunks before a def).
MIN_FILL = 0.25


@dataclass(frozen=True)
class Piece:
    start: int  # character offsets in the document
    end: int
    n_tokens: int
    line_start: int  # 1-based, inclusive
    line_end: int
    about: str | None  # heading path or first definition


def boundaries(text: str, kind: str) -> list[list[int]]:
    """Character positions where a chunk may start, best kind first."""
    line_starts = [0] + [m.end() for m in re.finditer(r"\n", text)]
    if kind == "doc":
        structure = [[m.start() for m in _HEADING.finditer(text)]]
    elif kind == "code":
        defs = [m.start() for m in _CODE_DEF.finditer(text)]
        structure = [[p for p in defs if not text[p].isspace()], defs]  # top-level first, then nested
    else:
        structure = [[m.start() for m in re.finditer(r"^(?:Files changed:|Diff:|diff --git )", text, re.M)]]
    blank = [m.end() for m in _BLANK.finditer(text)]
    return [*structure, blank, line_starts]


def chunk_text(text: str, offsets: list[tuple[int, int]], max_tokens: int, kind: str, overlap: int = 0,
               hard: list[int] = ()) -> list[Piece]:
    """Split one tokenised document into pieces of at most `max_tokens` tokens.

    With `overlap`, each piece after the first starts up to that many tokens
    before the previous one ended (at the earliest line start in that window),
    so a fact cut in two still appears whole in one piece. No piece crosses a
    `hard` boundary (character positions; e.g. where each file's diff starts),
    and no overlap reaches back over one.
    """
    n = len(offsets)
    if n == 0:
        return []
    starts = [o[0] for o in offsets]
    # A token may start a chunk only if it starts a new character (byte-level BPE can
    # split one character over several tokens, which then share a start offset).
    clean = [i == 0 or starts[i] > starts[i - 1] for i in range(n)]
    levels = [_token_indices(starts, clean, b) for b in boundaries(text, kind)]
    walls = _token_indices(starts, clean, list(hard)) + [n]
    heads = _headings(text) if kind == "doc" else []
    pieces, i = [], 0
    while i < n:
        wall = walls[bisect.bisect_right(walls, i)]
        if wall - i <= max_tokens:
            j = wall
        else:
            j = _best_cut(levels, clean, i, max_tokens)
        start = starts[i]
        end = starts[j] if j < n else len(text)
        pieces.append(_piece(text, start, end, j - i, heads))
        if j >= n:
            break
        i = _overlap_start(levels[-1], clean, i, j, overlap) if overlap and j != wall else j
    return pieces


def _overlap_start(line_starts: list[int], clean: list[bool], i: int, j: int, overlap: int) -> int:
    lo = max(i + 1, j - overlap)  # always move forward
    k = bisect.bisect_left(line_starts, lo)
    if k < len(line_starts) and line_starts[k] < j:
        return line_starts[k]
    while lo < j and not clean[lo]:
        lo += 1
    return lo


def _token_indices(starts: list[int], clean: list[bool], positions: list[int]) -> list[int]:
    """For each boundary character, the token containing it (a cut before that token keeps it whole)."""
    out = set()
    for p in positions:
        t = bisect.bisect_right(starts, p) - 1
        while t > 0 and not clean[t]:
            t -= 1
        if t > 0:
            out.add(t)
    return sorted(out)


def _best_cut(levels: list[list[int]], clean: list[bool], i: int, max_tokens: int) -> int:
    hi = i + max_tokens
    lo = i + max(1, int(max_tokens * MIN_FILL))
    for cuts in levels:
        k = bisect.bisect_right(cuts, hi) - 1
        if k >= 0 and cuts[k] >= lo:
            return cuts[k]
    j = hi
    while j > i + 1 and not clean[j]:
        j -= 1
    return j


def _headings(text: str) -> list[tuple[int, int, str]]:
    return [(m.start(), len(m.group(1)), m.group(2).strip()) for m in _HEADING.finditer(text)]


def _piece(text: str, start: int, end: int, n_tokens: int, heads: list[tuple[int, int, str]]) -> Piece:
    line_start = text.count("\n", 0, start) + 1
    body = text[start:end]
    line_end = line_start + body.rstrip("\n").count("\n")
    if heads:
        path: list[tuple[int, str]] = []
        for pos, level, title in heads:
            if pos > start + (len(body) - len(body.lstrip())):
                break
            path = [p for p in path if p[0] < level] + [(level, title)]
        about = " > ".join(t for _, t in path) or None
    else:
        m = _SYMBOL.search(body)
        about = m.group(1) if m else None
    return Piece(start, end, n_tokens, line_start, line_end, about)
