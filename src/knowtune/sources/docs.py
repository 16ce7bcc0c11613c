"""A folder of pages (Markdown, reStructuredText, HTML, PDF, plain text): one document per page.

Every format is normalised to Markdown-like text with `#` heading lines, so
the chunker cuts all of them at their sections and a chunk knows which
section it is from.
"""

from __future__ import annotations

import hashlib
import io
import re
from datetime import date as Date
from pathlib import Path, PurePosixPath
from typing import Iterator

import yaml
from pypdf import PdfReader, apply_configuration
from pypdf.errors import LimitReachedError

from ..config import DocsSource
from ..records import Document, Skipped, stable_id
from .files import glob_filter, list_files, skip_reason_by_name
from .gitcmd import SourceError
from .guard import Unreadable, content_digest, first_line, guarded, listening, read_checked, regular_file
from .html_page import html_to_markdown
from .rst_page import rst_to_markdown

FORMATS = {".md": "markdown", ".markdown": "markdown", ".rst": "rst", ".html": "html", ".htm": "html",
           ".pdf": "pdf", ".txt": "text"}
FORMAT_NAMES = {"markdown": "Markdown", "rst": "reStructuredText", "html": "HTML", "pdf": "PDF", "text": "text"}
# pypdf's limits on what one stream may inflate to (75 MB each by default), set to the page size cap:
# a PDF is read only if what it unpacks to fits the cap a file must fit, so a small bomb costs little.
PDF_LIMITS = ("zlib_maximum_output_length", "lzw_maximum_output_length", "run_length_maximum_output_length",
              "brotli_maximum_output_length", "jbig2_maximum_output_length",
              "array_based_stream_maximum_output_length")


class PageError(Unreadable):
    """A page that cannot be read; the message is the skip reason."""


def label(src: DocsSource) -> str:
    return f"docs:{src.path.name}"


def candidates(src: DocsSource) -> tuple[list[str], list[Skipped]]:
    if not src.path.is_dir():
        raise SourceError(f"sources: docs path {src.path} is not a folder")
    kept, excluded = glob_filter(list_files(src.path), src.include, src.exclude)
    skipped = [Skipped(p, "excluded by include/exclude globs", label(src)) for p in excluded]
    pages = []
    for p in kept:
        if PurePosixPath(p).suffix.lower() in FORMATS:
            pages.append(p)
        else:
            skipped.append(Skipped(p, f"not a page ({PurePosixPath(p).suffix or 'no suffix'})", label(src)))
    return pages, skipped


def fingerprint(src: DocsSource) -> str:
    """Content hash of every page (not modification times: a touched file is unchanged)."""
    h = hashlib.sha256()
    for rel in candidates(src)[0]:
        h.update(f"{rel}\x1f{content_digest(src.path / rel, src.max_file_bytes)}\n".encode())
    return h.hexdigest()[:16]


def read(src: DocsSource, paths: list[str]) -> Iterator[Document | Skipped]:
    source = label(src)
    for rel in paths:
        yield guarded(rel, source, lambda rel=rel: read_page(src.path / rel, rel, src.max_file_bytes, source))


def read_page(path: Path, rel: str, max_bytes: int, source: str) -> Document:
    reason = skip_reason_by_name(rel)
    if reason is not None and reason != "binary":  # "binary" is the name rule for .pdf, read below
        raise PageError(reason)
    size = regular_file(path).st_size
    if size > max_bytes:
        raise PageError(f"too large ({size} bytes > {max_bytes})")
    fmt = FORMATS[PurePosixPath(rel).suffix.lower()]
    data = read_checked(path, size)
    try:
        if fmt == "html":
            text, title, date = html_to_markdown(data)
        elif fmt == "pdf":
            text, title, date = pdf_to_markdown(data, max_bytes)
        else:
            raw = _decode(data)
            if fmt == "markdown":
                text, title, date = markdown_page(raw)
            elif fmt == "rst":
                text, title, date = rst_to_markdown(raw)
            else:
                text, title, date = raw, None, None
    except RecursionError:
        # The converters walk a page's structure recursively; real pages nest a few dozen levels,
        # one past Python's recursion limit (20,000 nested <div>s, say) is made to break a reader.
        raise PageError(f"{FORMAT_NAMES[fmt]} nested too deeply to parse") from None
    if not text.strip():
        raise PageError("empty")
    return Document(
        id=stable_id(source, rel), source=source, path=rel, kind="doc", text=text,
        metadata={
            "title": title or Path(rel).stem.replace("_", " ").replace("-", " "),
            "headings": heading_paths(text), "format": fmt, "date": iso_date(date),
            "programming_language": None, "natural_language": None,  # language id fills it (curate)
        },
    )


def _decode(data: bytes) -> str:
    if b"\0" in data:  # text never holds NUL bytes; as in a repository, a file with them is binary
        raise PageError("binary (NUL bytes)")
    try:
        return data.decode("utf-8-sig").replace("\r\n", "\n")
    except UnicodeDecodeError:
        raise PageError("unreadable encoding (not UTF-8)") from None


# --- Markdown ----------------------------------------------------------------

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)---[ \t]*\n", re.S)
_ATX = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^[ \t]{0,3}(```|~~~)")


def markdown_page(text: str) -> tuple[str, str | None, object]:
    """(text, title, date) of a Markdown page: front matter read and removed, setext headings made `#` lines."""
    meta: dict = {}
    front = _FRONT_MATTER.match(text)
    if front:
        try:
            loaded = yaml.safe_load(front.group(1))
        except (yaml.YAMLError, RecursionError):  # nested past PyYAML's recursive composer: unreadable too
            loaded = None
        if isinstance(loaded, dict):
            meta, text = loaded, text[front.end():]
    lines, out, fence = text.split("\n"), [], None
    for i, line in enumerate(lines):
        opening = _FENCE.match(line)
        if opening and (fence is None or opening.group(1) == fence):
            fence = None if fence else opening.group(1)
        underline = re.match(r"^[ \t]{0,3}(=+|-+)[ \t]*$", line)
        if (fence is None and underline and out and out[-1].strip() and not _ATX.match(out[-1])
                and (len(out) < 2 or not out[-2].strip()) and not re.match(r"^\s*([-*+]|\d+\.)\s", out[-1])):
            # A setext heading: "Title" over "=====" (level 1) or "-----" (level 2).
            out[-1] = ("# " if underline.group(1)[0] == "=" else "## ") + out[-1].strip()
            continue
        out.append(line)
    body = "\n".join(out).lstrip("\n")
    title = meta.get("title") if isinstance(meta.get("title"), str) else None
    if title is None:
        title = next((h.rsplit(" > ", 1)[-1] for h in heading_paths(body)), None)
    return body, title, meta.get("date")


def heading_paths(text: str) -> list[str]:
    """Every `#` heading as its path from the top ("Deploying > Backups"), fenced code left out."""
    paths: list[str] = []
    stack: list[tuple[int, str]] = []
    fence = None
    for line in text.split("\n"):
        opening = _FENCE.match(line)
        if opening and (fence is None or opening.group(1) == fence):
            fence = None if fence else opening.group(1)
            continue
        m = _ATX.match(line) if fence is None else None
        if m:
            level = len(m.group(1))
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, m.group(2)))
            paths.append(" > ".join(title for _, title in stack))
    return paths


# --- PDF and dates -------------------------------------------------------------


def pdf_to_markdown(data: bytes, max_bytes: int = 20_000_000) -> tuple[str, str | None, object]:
    """(text, title, date) from a PDF's text layer, one `## Page N` section per page, under `# title`.

    Streams may inflate to at most `max_bytes` each. pypdf logs what it repairs
    or gives up on ("EOF marker not found") to the `pypdf` logger: that is
    kept off the console and, when the PDF is unreadable, goes into the reason.
    """
    # Both scoped to this call: the limits through pypdf's context variable, the log records by listening().
    with listening() as said, apply_configuration(**{limit: max_bytes for limit in PDF_LIMITS}):
        try:
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted and not reader.decrypt(""):
                raise PageError("encrypted PDF")
            pages = [(page.extract_text() or "").strip() for page in reader.pages]
            meta = reader.metadata
            title = (meta.title or "").strip() if meta else ""
        except PageError:
            raise
        except LimitReachedError:
            raise PageError(f"unreadable PDF (a stream inflates to more than {max_bytes} bytes)") from None
        except Exception as err:  # a damaged PDF fails deep in the parser, with any kind of exception
            heard = f"; {said[0]}" if said else ""
            raise PageError(f"unreadable PDF ({type(err).__name__}: {first_line(err)}{heard})") from None
    if not any(pages):
        heard = f" ({said[0]})" if said else " (scanned PDF?)"
        raise PageError(f"no text layer{heard}")
    if not title:
        title = next(line.strip() for page in pages for line in page.splitlines() if line.strip())
    date = None
    if meta:
        try:
            date = meta.modification_date or meta.creation_date
        except Exception:  # a malformed date string in the metadata is no reason to lose the text
            date = None
    body = [f"# {title}"] + [f"## Page {n}\n\n{text}" for n, text in enumerate(pages, 1) if text]
    return "\n\n".join(body) + "\n", title, date


def iso_date(value: object) -> str | None:
    """YYYY-MM-DD from a date, a datetime or a string that starts with one; None otherwise."""
    if isinstance(value, Date):  # datetime is a date too
        return value.strftime("%Y-%m-%d")
    if isinstance(value, str):
        m = re.match(r"^\s*(\d{4}-\d{2}-\d{2})", value)
        return m.group(1) if m else None
    return None
