"""An HTML page as Markdown-like text: the main content only, headings as `#` lines, links kept as text.

BeautifulSoup parses (real pages are rarely valid HTML); the walk over its tree
is written here because the converters that exist (markdownify, html2text)
keep navigation and sidebars, and which parts of a page are its content is
the point of this module.
"""

from __future__ import annotations

import re
import textwrap
import warnings

from bs4 import (BeautifulSoup, Comment, Declaration, Doctype, MarkupResemblesLocatorWarning, NavigableString,
                 ProcessingInstruction, Tag, XMLParsedAsHTMLWarning)

# Never content, wherever they are.
_DROP = ["nav", "aside", "script", "style", "form", "noscript", "template", "svg", "iframe", "button", "select",
         "textarea", "input", "canvas", "object", "embed", "dialog", "map", "audio", "video"]
# ARIA landmarks of the same kinds, for sites that mark a <div> rather than use the element.
_DROP_ROLES = {"navigation", "banner", "contentinfo", "complementary", "search"}
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCKS = {"p", "div", "section", "article", "main", "header", "footer", "figure", "figcaption", "dl", "dt", "dd",
           "address", "details", "summary", "body", "html", "center", "hgroup", "li", "fieldset"}
_SKIP_STRINGS = (Comment, Declaration, Doctype, ProcessingInstruction)
_DATE_META = ("date", "dc.date", "dcterms.date", "dcterms.modified", "dcterms.created", "last-modified",
              "article:modified_time", "article:published_time")


def html_to_markdown(data: bytes) -> tuple[str, str | None, str | None]:
    """(text, title, date as written in the page) of an HTML file's bytes; the parser finds the encoding."""
    with warnings.catch_warnings():
        # BeautifulSoup warns when a page looks like XML or like a bare URL; parsing it as HTML is what
        # is wanted all the same, so those two are silenced here, for this call only.
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        soup = BeautifulSoup(data, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    date = _meta_date(soup)
    root = soup.find("main") or soup.find(attrs={"role": "main"}) or soup.find("article") or soup.body or soup
    for el in root.find_all(_DROP):
        el.decompose()
    for el in root.find_all(_unwanted):
        el.decompose()
    if root.name not in ("main", "article") and root.get("role") != "main":
        # Without a marked main part, the page's own header and footer are site chrome;
        # inside <main> or <article> a <header> usually holds the article's title.
        for el in root.find_all(["header", "footer"]):
            el.decompose()
    blocks: list[str] = []
    _render(root, blocks, 0)
    text = "\n\n".join(blocks)
    if not title:
        first = root.find("h1")
        title = _squash(first.get_text(" ")) if first else None
    if date is None:
        stamp = root.find("time", attrs={"datetime": True})
        date = stamp["datetime"] if stamp else None
    return (text + "\n" if text else ""), title or None, date


def _unwanted(el: Tag) -> bool:
    return el.get("role") in _DROP_ROLES or el.has_attr("hidden") or el.get("aria-hidden") == "true"


def _meta_date(soup: BeautifulSoup) -> str | None:
    for meta in soup.find_all("meta"):
        key = (meta.get("name") or meta.get("property") or meta.get("itemprop") or "").lower()
        if key in _DATE_META or key == "datemodified" or key == "datepublished":
            if meta.get("content"):
                return meta["content"]
    return None


def _render(node: Tag, blocks: list[str], depth: int) -> None:
    """Append the Markdown blocks of `node`'s children: inline runs become paragraphs."""
    run: list[str] = []

    def flush() -> None:
        lines = [line.strip() for line in "".join(run).split("\n")]
        text = "\n".join(line for line in lines if line)
        run.clear()
        if text:
            blocks.append(text)

    for child in node.children:
        if isinstance(child, NavigableString):
            if not isinstance(child, _SKIP_STRINGS):
                run.append(_squash_keep_edges(str(child)))
            continue
        if not isinstance(child, Tag):
            continue
        name = child.name
        if name in _HEADINGS:
            flush()
            text = _squash(_inline(child).replace("\n", " "))
            if text:
                blocks.append("#" * _HEADINGS[name] + " " + text)
        elif name == "pre":
            flush()
            blocks.append(_fence(child))
        elif name in ("ul", "ol"):
            flush()
            listed = _list(child, depth)
            if listed:
                blocks.append(listed)
        elif name == "table":
            flush()
            blocks.append(_table(child))
        elif name == "blockquote":
            flush()
            inner: list[str] = []
            _render(child, inner, depth)
            blocks.append("\n".join(f"> {line}".rstrip() for line in "\n\n".join(inner).splitlines()))
        elif name == "hr":
            flush()
        elif name == "br":
            run.append("\n")
        elif name in _BLOCKS:
            flush()
            _render(child, blocks, depth)
        else:
            run.append(_inline_one(child))
    flush()


def _inline(node: Tag) -> str:
    return "".join(_inline_one(child) for child in node.children)


def _inline_one(node) -> str:
    if isinstance(node, NavigableString):
        return "" if isinstance(node, _SKIP_STRINGS) else _squash_keep_edges(str(node))
    if node.name == "a":
        return _link(node)
    if node.name == "code":
        code = _squash(node.get_text())
        return f"`{code}`" if code else ""
    if node.name == "br":
        return "\n"
    if node.name == "img":
        return node.get("alt") or ""
    return _inline(node)


def _link(a: Tag) -> str:
    text = _squash(_inline(a))
    href = (a.get("href") or "").strip()
    if href.startswith("#") and not re.search(r"\w", text):
        return ""  # a heading's permalink mark (¶, #)
    if not href or href.startswith(("#", "javascript:")) or href == text:
        return text
    return f"{text} ({href})" if text else href


def _fence(pre: Tag) -> str:
    code = pre.get_text().strip("\n")
    classes = " ".join(pre.get("class", []) + (pre.code.get("class", []) if pre.code else []))
    m = re.search(r"(?:language|lang|highlight)-([\w+#-]+)", classes)
    ticks = "```" if "```" not in code else "~~~~"
    return f"{ticks}{m.group(1) if m else ''}\n{code}\n{ticks}"


def _list(el: Tag, depth: int) -> str:
    indent = "  " * depth
    start = int(el["start"]) if el.name == "ol" and str(el.get("start", "")).isdigit() else 1
    out = []
    for n, li in enumerate(el.find_all("li", recursive=False), start=start):
        marker = f"{n}." if el.name == "ol" else "-"
        inner: list[str] = []
        _render(li, inner, depth + 1)
        first, *rest = inner or [""]
        head, *more = f"{marker} {first}".split("\n")
        out += [indent + head] + [indent + "  " + line for line in more]
        # Nested lists come indented already; other blocks of the item are indented under its marker.
        out += [b if b.startswith(" ") else textwrap.indent(b, indent + "  ") for b in rest]
    return "\n".join(out)


def _table(table: Tag) -> str:
    rows = []
    for i, tr in enumerate(table.find_all("tr")):
        cells = [_squash(_inline(td).replace("\n", " ")) for td in tr.find_all(["th", "td"], recursive=False)]
        rows.append("| " + " | ".join(cells) + " |")
        if i == 0 and tr.find("th"):
            rows.append("|" + "---|" * len(cells))
    return "\n".join(rows)


def _squash(text: str) -> str:
    return re.sub(r"[ \t\r\f\v\n]+", " ", text).strip()


def _squash_keep_edges(text: str) -> str:
    # Whitespace between words is one space, wherever the source broke its lines.
    return re.sub(r"\s+", " ", text)
