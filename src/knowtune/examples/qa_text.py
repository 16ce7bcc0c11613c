"""Question–answer pairs from prose: a page's headings and the reasons given for changes.

A heading names what its section is about and the section's first paragraph
usually answers it; a commit or pull request says why files changed, which is
exactly what nobody can read from the code afterwards.
"""

from __future__ import annotations

import re

from ..records import Document
from .qa_pair import QAPair

MAX_FILES = 5  # one question per changed file, up to this many: a sweeping change says little about each file
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})")
# What follows a commit message or a PR's description (see render in sources/git_history and pull_requests).
AFTER_MESSAGE = ("\n\nMerge commit: ", "\n\nFiles changed:\n", "\n\nDiff:\n")
AFTER_DESCRIPTION = ("\n\nComments:", "\n\nReviews:", "\n\nReview comments:", "\n\nFiles changed:", "\n\nDiff:")
NO_DESCRIPTION = {"", "none", "no description provided.", "(no description)"}
IMAGE_OR_HTML = ("![", "[![", "<img", "<p", "</p", "<a ", "</a", "<!--")


# --- pages -------------------------------------------------------------------


def doc_pairs(doc: Document) -> list[QAPair]:
    lines = _lines(doc.text)
    title = doc.metadata.get("title")
    pairs = []
    for i, heading in _headings(lines):
        title = title or heading  # a page without a title is named by its first heading
        paragraph = _first_paragraph(lines, i + 1)
        if paragraph is None:
            continue
        if heading.endswith("?"):
            question = heading
        elif heading == title:
            question = f"What is {title} about?"
        else:
            question = f"What does {title} say about {heading}?"
        start, end = paragraph
        pairs.append(QAPair(question, doc.text[start:end], heading, "heading", paragraph, {"title": title}))
    return pairs


def _lines(text: str) -> list[tuple[int, int, str]]:
    """(start, end without the newline, text) of every line."""
    out, pos = [], 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        out.append((pos, pos + len(body), body))
        pos += len(line)
    return out


def _headings(lines: list[tuple[int, int, str]]):
    """(line index, heading text) of each heading outside code fences and front matter."""
    i = _after_front_matter(lines)
    while i < len(lines):
        text = lines[i][2]
        if FENCE.match(text):
            i = _fence_end(lines, i)
            continue
        m = HEADING.match(text)
        if m:
            yield i, m.group(2).strip()
        i += 1


def _after_front_matter(lines: list[tuple[int, int, str]]) -> int:
    # YAML front matter may hold `# comments`, which are not headings.
    if lines and lines[0][2].strip() == "---":
        for i in range(1, len(lines)):
            if lines[i][2].strip() in ("---", "..."):
                return i + 1
    return 0


def _fence_end(lines: list[tuple[int, int, str]], i: int) -> int:
    """The line after the fence opened on line i: a bare run of its character, at least as long
    (an unclosed fence runs to the end)."""
    marker = FENCE.match(lines[i][2]).group(1)
    for j in range(i + 1, len(lines)):
        closing = lines[j][2].strip()
        if closing.startswith(marker) and closing == closing[0] * len(closing):
            return j + 1
    return len(lines)


def _first_paragraph(lines: list[tuple[int, int, str]], i: int) -> tuple[int, int] | None:
    """Span of the section's first paragraph (a list counts; code and badges don't), or None."""
    while i < len(lines):
        text = lines[i][2]
        if not text.strip():
            i += 1
        elif FENCE.match(text):
            i = _fence_end(lines, i)
        elif HEADING.match(text):
            return None
        else:
            j = i
            while j + 1 < len(lines) and _continues(lines[j + 1][2]):
                j += 1
            if not _only_images(lines[i : j + 1]):
                return lines[i][0], lines[j][1]
            i = j + 1
    return None


def _continues(text: str) -> bool:
    return bool(text.strip()) and not FENCE.match(text) and not HEADING.match(text)


def _only_images(block: list[tuple[int, int, str]]) -> bool:
    # A README's badge row or logo is the first "paragraph" under its title, and no answer to anything.
    return all(line.strip().startswith(IMAGE_OR_HTML) for _, _, line in block)


# --- changes -----------------------------------------------------------------


def change_pairs(doc: Document) -> list[QAPair]:
    files = list(doc.metadata.get("files") or [])[:MAX_FILES]
    title = doc.metadata.get("title") or ""
    if doc.path.startswith("pr/"):
        found = _description(doc.text)
        change = f'pull request #{doc.metadata.get("number") or doc.path[3:]} ("{title}")'
    else:
        found = _commit_body(doc.text, title)
        change = f'"{title}"'
    if found is None or not title:
        return []
    answer, span = found
    # One fact, the reason for the change; each changed file gives it one more question (phrasings.py)
    question = f"Why was {files[0]} changed in {change}?" if files else f"Why was {change} made?"
    return [QAPair(question, answer, files[0] if files else change, "change_reason", span,
                   {"files": files, "change": change})]


def _commit_body(text: str, subject: str) -> tuple[str, tuple[int, int]] | None:
    # The text is "commit <sha>\nDate: ...\n\n<subject>\n\n<body>\n\nFiles changed: ...".
    header_end = text.find("\n\n")
    start = header_end + 2
    if header_end < 0 or not text.startswith(subject + "\n\n", start):
        return None
    start += len(subject) + 2
    if any(text.startswith(marker.lstrip("\n"), start) for marker in AFTER_MESSAGE):
        return None  # no body: the subject is followed straight by the file list
    return _until(text, start, AFTER_MESSAGE)


def _description(text: str) -> tuple[str, tuple[int, int]] | None:
    # The text is "PR #n: title\nState: ...\nURL: ...\n\n<description>\n\nComments: ...".
    header_end = text.find("\n\n")
    if header_end < 0:
        return None
    start = header_end + 2
    if any(text.startswith(marker.lstrip("\n"), start) for marker in AFTER_DESCRIPTION):
        return None
    found = _until(text, start, AFTER_DESCRIPTION)
    if found is None or found[0].lower() in NO_DESCRIPTION:
        return None
    return found


def _until(text: str, start: int, markers: tuple[str, ...]) -> tuple[str, tuple[int, int]] | None:
    """The text from `start` to the first marker (or the end), stripped, with its span."""
    ends = [i for i in (text.find(m, start) for m in markers) if i >= 0]
    end = min(ends, default=len(text))
    while end > start and text[end - 1].isspace():
        end -= 1
    while start < end and text[start].isspace():
        start += 1
    return (text[start:end], (start, end)) if end > start else None
