"""The same sections as Markdown (images as relative links) and as one self-contained HTML page (images
inside it as data URIs, so the page can be mailed or attached to a ticket and still show its plots)."""

from __future__ import annotations

import base64
import html
import os
import re
from pathlib import Path

from .blocks import Bullets, Heading, Image, Pre, Section, Table, num


def _cell(value) -> str:
    return num(value) if isinstance(value, (int, float)) or value is None else str(value)


def to_markdown(title: str, sections: list[Section], root: Path) -> str:
    out = [f"# {title}", ""]
    for heading, blocks in sections:
        out += [f"## {heading}", ""]
        for b in blocks:
            if isinstance(b, Table):
                out.append("| " + " | ".join(b.header) + " |")
                out.append("|" + "---|" * len(b.header))
                # a Markdown table row is one line: newlines inside a cell become spaces
                out += ["| " + " | ".join(" ".join(_cell(c).replace("|", "\\|").split()) or " " for c in row) + " |"
                        for row in b.rows]
            elif isinstance(b, Image):
                if b.path.is_file():
                    out.append(f"![{b.alt}]({Path(os.path.relpath(b.path, root)).as_posix()})")
            elif isinstance(b, Pre):
                out += ["```", b.text.replace("```", "'''"), "```"]
            elif isinstance(b, Heading):
                out.append(f"### {b.text}")
            elif isinstance(b, Bullets):
                out += [f"- {item}" for item in b.items]
            else:
                out.append(b)
            out.append("")
    return "\n".join(out)


def _inline(text: str) -> str:
    """Escaped text with the two bits of Markdown the sections use: `code` and **bold**."""
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)


def _anchor(heading: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-")


def to_html(title: str, sections: list[Section]) -> str:
    e = html.escape
    out = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
           f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{e(title)}</title>"
           f"<style>{_CSS}</style></head><body><h1>{e(title)}</h1>"]
    out.append("<nav>" + " · ".join(f"<a href='#{_anchor(h)}'>{e(h)}</a>" for h, _ in sections) + "</nav>")
    for heading, blocks in sections:
        out.append(f"<h2 id='{_anchor(heading)}'>{e(heading)}</h2>")
        for b in blocks:
            if isinstance(b, Table):
                out.append(f"<table{' class=wide' if b.wide else ''}><tr>"
                           + "".join(f"<th>{_inline(str(h))}</th>" for h in b.header) + "</tr>")
                out += ["<tr>" + "".join(f"<td>{_inline(_cell(c))}</td>" for c in row) + "</tr>" for row in b.rows]
                out.append("</table>")
            elif isinstance(b, Image):
                if b.path.is_file():
                    data = base64.b64encode(b.path.read_bytes()).decode()
                    out.append(f"<figure><img alt='{e(b.alt)}' src='data:image/png;base64,{data}'>"
                               f"<figcaption>{e(b.alt)}</figcaption></figure>")
            elif isinstance(b, Pre):
                out.append(f"<pre>{e(b.text)}</pre>")
            elif isinstance(b, Heading):
                out.append(f"<h3>{e(b.text)}</h3>")
            elif isinstance(b, Bullets):
                out.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in b.items) + "</ul>")
            else:
                out.append(f"<p>{_inline(b)}</p>")
    out.append("</body></html>")
    return "\n".join(out)


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#222}"
    "nav{margin-bottom:1rem}nav a{color:#245}h2{border-bottom:1px solid #ddd;margin-top:2rem}"
    "table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:left;"
    "vertical-align:top}th{background:#f3f3f3}table.wide td{font-size:.8rem;white-space:pre-wrap;max-width:18rem}"
    "pre{background:#f6f6f6;padding:.6rem;white-space:pre-wrap;font-size:.85rem}img{max-width:100%}"
    "figure{margin:.5rem 0}figcaption{font-size:.8rem;color:#666}code{background:#f3f3f3;padding:0 .2rem}"
)
