"""One thing found in a text: what kind it is and where, never the value itself."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # e.g. "aws_access_key", "password", "email"
    start: int  # character offsets [start, end) in the text
    end: int


def merge(found: Iterable[tuple[int, Finding]]) -> list[Finding]:
    """Non-overlapping findings sorted by start, from (priority, finding) pairs that may overlap.

    Overlapping spans are united rather than one dropped: a keyword rule and a token rule often
    see the same value with slightly different edges, and keeping only the narrower one would
    leave the rest of the secret in the text. The united span takes the higher priority's kind.
    """
    out: list[Finding] = []
    best = -1
    for prio, f in sorted(found, key=lambda pf: (pf[1].start, -pf[1].end)):
        if out and f.start < out[-1].end:
            last = out[-1]
            kind = f.kind if prio > best else last.kind
            best = max(best, prio)
            out[-1] = Finding(kind, last.start, max(last.end, f.end))
        else:
            out.append(f)
            best = prio
    return out


def allowed(value: str, allow: Sequence[re.Pattern]) -> bool:
    # fullmatch, not search: an allow entry "EXAMPLE" must not let every key containing it through.
    return any(p.fullmatch(value) for p in allow)
