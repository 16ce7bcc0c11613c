"""A reStructuredText page as Markdown-like text: section titles become `#` headings, code blocks fences.

Written by hand, not with docutils: real pages are full of Sphinx directives and
roles (toctree, :ref:, :func:) that docutils alone reports as errors, and it
has no Markdown writer. What the chunker and a reader need is headings, code
and plain text, which a line scanner gives.
"""

from __future__ import annotations

import re
import textwrap

_ADORNMENT = re.compile(r"^([!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])\1{2,}\s*$")
_EXPLICIT = re.compile(r"^(\s*)\.\.(?:\s+(.*))?$")
_DIRECTIVE = re.compile(r"^([\w:.+-]+)::\s*(.*)$")
_CODE = {"code", "code-block", "sourcecode"}
# Directives that hold no prose: tables of contents, index entries, images, includes, autodoc.
_DROP = {"toctree", "contents", "index", "image", "figure", "raw", "include", "literalinclude", "highlight",
         "meta", "only", "ifconfig", "autosummary", "automodule", "autoclass", "autofunction", "automethod",
         "currentmodule", "module", "tabularcolumns", "sectionauthor", "moduleauthor", "codeauthor", "spelling"}
_INLINE = re.compile(
    r"``(?P<literal>.+?)``"
    r"|:(?P<role>[\w:+.-]+):`(?P<role_body>[^`]+)`"
    r"|`(?P<ref>[^`]+)`__?"
    r"|`(?P<interpreted>[^`]+)`"
)
# Roles whose text reads as prose; every other role names code (:func:, :class:, :file:, ...).
_PROSE_ROLES = {"ref", "doc", "term", "abbr", "numref", "download", "any", "emphasis", "strong", "title-reference",
                "sub", "sup", "pep", "rfc", "math", "menuselection", "guilabel"}
_BULLET = re.compile(r"^(\s*)[*+\u2022](\s+)")
# Directives nested deeper than this are not converted. Real pages nest a handful (a code block in a note in
# a list); each level holds its own dedented copy of what it contains, so a page nesting hundreds of levels
# would cost hundreds of copies of itself before Python's recursion limit stopped it.
MAX_NESTING = 50
_DATE_FIELD = re.compile(r"^:date:\s*(.+?)\s*$", re.M)


def rst_to_markdown(text: str) -> tuple[str, str | None, str | None]:
    """(text, document title, date from a :date: field) of a reStructuredText page."""
    lines = text.replace("\r\n", "\n").expandtabs(8).split("\n")
    out = _convert(lines, styles=[])
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip("\n")
    title = next((m.group(1) for m in re.finditer(r"^#{1,6} (.+)$", body, re.M)), None)
    date = _DATE_FIELD.search(text)
    return (body + "\n" if body else ""), title, date.group(1) if date else None


def _convert(lines: list[str], styles: list[tuple[str, bool]], depth: int = 0) -> list[str]:
    """Markdown lines for rst lines; `styles` holds the title adornments seen so far, in order (= levels)."""
    if depth > MAX_NESTING:
        # The error Python's own limit raises, which the caller already turns into "nested too deeply".
        raise RecursionError(f"reStructuredText nested more than {MAX_NESTING} levels")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        prev_blank = i == 0 or not lines[i - 1].strip()
        explicit = _EXPLICIT.match(line)
        if explicit:
            end = _block_end(lines, i + 1, len(explicit.group(1)))
            out += _explicit(explicit.group(2) or "", lines[i + 1:end], styles, depth)
            i = end
            continue
        title = _title_at(lines, i) if prev_blank else None
        if title:
            heading, style, used = title
            if style not in styles:
                styles.append(style)
            out += ["", "#" * min(styles.index(style) + 1, 6) + " " + inline(heading), ""]
            i += used
            continue
        if _ADORNMENT.match(line) and prev_blank:
            i += 1  # a transition (horizontal rule) between paragraphs
            continue
        if line.rstrip().endswith("::"):
            indent = len(line) - len(line.lstrip())
            out.append(inline(_literal_intro(line)))
            start = i + 1
            while start < len(lines) and not lines[start].strip():
                start += 1
            if start < len(lines) and _indent(lines[start]) > indent:
                end = _block_end(lines, start, indent)
                out += ["", *_fence(lines[start:end], ""), ""]
                i = end
            else:
                i += 1
            continue
        out.append(inline(_BULLET.sub(r"\1-\2", line)))
        i += 1
    return out


def _title_at(lines: list[str], i: int) -> tuple[str, tuple[str, bool], int] | None:
    """(title, adornment style, lines used) when a section title starts at line i."""
    line = lines[i]
    nxt = lines[i + 1] if i + 1 < len(lines) else ""
    after = lines[i + 2] if i + 2 < len(lines) else ""
    over = _ADORNMENT.match(line)
    if over and nxt.strip() and _ADORNMENT.match(after) and after.strip()[0] == line.strip()[0]:
        return nxt.strip(), (line.strip()[0], True), 3
    under = _ADORNMENT.match(nxt)
    if (line.strip() and not over and not line[0].isspace() and under
            and len(nxt.strip()) >= min(len(line.strip()), 4)):
        return line.strip(), (nxt.strip()[0], False), 2
    return None


def _explicit(rest: str, block: list[str], styles: list[tuple[str, bool]], depth: int) -> list[str]:
    """Markdown lines for one explicit markup block: a directive, a target, a footnote or a comment."""
    directive = _DIRECTIVE.match(rest)
    if directive is None:
        if rest.startswith("["):  # a footnote or citation: its text is content
            return ["", inline(rest), *_convert(_dedent(block), styles, depth + 1), ""]
        return []  # a comment, a hyperlink target (.. _name:) or a substitution definition (.. |x| ...)
    name, argument = directive.group(1).lower(), directive.group(2)
    content = _dedent(block)
    # Options (":linenos:", ":caption: ...") open a directive's content, before its first blank line.
    while content and re.match(r"^:[\w-]+:", content[0]):
        content.pop(0)
    if name in _CODE:
        return ["", *_fence(content, argument.strip()), ""]
    if name in _DROP:
        return []
    lead = [f"{name.capitalize()}: {inline(argument)}".rstrip()] if name != "container" else []
    return ["", *lead, *_convert(content, styles, depth + 1), ""]


def _literal_intro(line: str) -> str:
    # "Run this::" reads "Run this:"; a lone "::", or one after a space, disappears.
    stripped = line.rstrip()
    if stripped.strip() == "::":
        return ""
    return stripped[:-2].rstrip() if stripped[-3:-2].isspace() else stripped[:-1]


def _fence(lines: list[str], language: str) -> list[str]:
    code = _dedent(lines)
    ticks = "~~~~" if any("```" in line for line in code) else "```"
    return [f"{ticks}{language}", *code, ticks]


def _block_end(lines: list[str], start: int, indent: int) -> int:
    """End of the indented block from `start`: lines blank or indented deeper than `indent`."""
    end = start
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > indent):
        end += 1
    while end > start and not lines[end - 1].strip():
        end -= 1  # trailing blank lines belong to what follows
    return end


def _dedent(lines: list[str]) -> list[str]:
    text = textwrap.dedent("\n".join(lines)).strip("\n")
    return text.split("\n") if text else []


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def inline(text: str) -> str:
    """Inline markup as Markdown: literals in backticks, links as `text (url)`, roles as their text."""
    return _INLINE.sub(_inline_one, text)


def _inline_one(m: re.Match) -> str:
    if m.group("literal") is not None:
        return f"`{m.group('literal')}`"
    if m.group("role") is not None:
        body = m.group("role_body")
        shown = re.match(r"^(.+?)\s*<[^>]+>$", body, re.S)
        if shown:
            text = shown.group(1)
        else:
            text = body.lstrip("!")
            if text.startswith("~"):  # :func:`~a.b.c` shows as c
                text = text[1:].rsplit(".", 1)[-1]
        role = m.group("role").rsplit(":", 1)[-1]
        return text if role in _PROSE_ROLES else f"`{text}`"
    if m.group("ref") is not None:
        body = m.group("ref")
        target = re.match(r"^(.*?)\s*<([^>]+)>$", body, re.S)
        if not target:
            return body
        text, url = target.group(1), target.group(2)
        if url.endswith("_"):  # a reference to a named target elsewhere in the document
            return text
        return f"{text} ({url})" if text else url
    return f"`{m.group('interpreted')}`"
