import os
import shutil
import warnings
import zlib
from pathlib import Path

import pytest

from knowtune.config import DocsSource
from knowtune.records import Document, Skipped
from knowtune.sources import SourceError, docs

PAGES = Path(__file__).parents[1] / "fixtures" / "docs"


def read_all(folder: Path, **settings) -> tuple[dict[str, Document], dict[str, str]]:
    src = DocsSource(type="docs", path=folder, **settings)
    paths, skipped = docs.candidates(src)
    items = list(docs.read(src, paths))
    pages = {d.path: d for d in items if isinstance(d, Document)}
    reasons = {s.path: s.reason for s in skipped + [s for s in items if isinstance(s, Skipped)]}
    return pages, reasons


@pytest.fixture(scope="module")
def pages() -> dict[str, Document]:
    return read_all(PAGES)[0]


def test_every_format_becomes_one_doc_with_its_format(pages):
    assert {p: d.metadata["format"] for p, d in pages.items()} == {
        "keeper-handbook.md": "markdown", "storms.rst": "rst", "index.html": "html", "oil-report.pdf": "pdf",
        "radio-log.txt": "text",
    }
    assert all(d.kind == "doc" and d.source == "docs:docs" for d in pages.values())


def test_html_keeps_the_main_text_only_with_links_as_text(pages):
    page = pages["index.html"]
    text = page.text
    for chrome in ("Lanterna docs", "Version 1.2", "Install", "Suppliers", "On this page", "Privacy",
                   "track-every-click", "font-family", "Was this page useful", "¶"):
        assert chrome not in text, chrome
    assert text.startswith("# The nightly report\n")
    assert "\n## Reading the report\n" in text and "\n## Warnings\n" in text
    assert "report format reference (https://lanterna.example/docs/format)" in text
    assert "for example `oil: 14`." in text
    assert "- Lamps and mantles are counted one by one.\n- Oil is counted in litres.\n  - Storm nights" in text
    assert "```text\nWARNING: oil below the reserve of 12 litres\n```" in text
    assert "one line per item in the store room, sorted by name." in text  # source line breaks joined
    assert page.metadata["title"] == "Lanterna: the nightly report"
    assert page.metadata["headings"] == [
        "The nightly report", "The nightly report > Reading the report", "The nightly report > Warnings"]
    assert page.metadata["date"] == "2026-09-25"


def test_html_without_main_drops_header_and_footer_and_takes_the_first_h1_as_title(tmp_path):
    (tmp_path / "p.htm").write_text(
        "<html><body><header>Site name</header><div role='navigation'>Home | About</div>"
        "<h1>Wick sizes</h1><p>Wicks come in <b>two</b> sizes.</p><footer>Contact us</footer></body></html>")
    pages, _ = read_all(tmp_path)
    page = pages["p.htm"]
    assert page.text == "# Wick sizes\n\nWicks come in two sizes.\n"
    assert page.metadata["title"] == "Wick sizes" and page.metadata["date"] is None


def test_markdown_front_matter_and_setext_headings(pages):
    page = pages["keeper-handbook.md"]
    assert not page.text.startswith("---") and "date: 2026" not in page.text
    assert page.text.startswith("# Lanterna for keepers\n")
    assert "\n## The nightly round\n" in page.text and "====" not in page.text
    assert page.metadata["title"] == "The keeper's handbook"  # front matter wins over the first heading
    assert page.metadata["date"] == "2026-09-14"
    # a comment inside a code fence is not a heading
    assert page.metadata["headings"] == [
        "Lanterna for keepers", "Lanterna for keepers > The nightly round", "Lanterna for keepers > Ordering oil"]


def test_rst_titles_become_headings_by_order_of_adornment(pages):
    page = pages["storms.rst"]
    text = page.text
    assert text.startswith("# Storm nights\n")
    assert "\n## Counting storms\n" in text and "\n### How long the oil lasts\n" in text
    assert "=====" not in text and "-----" not in text
    assert "Harbour weather service (https://weather.harbour.example/storms)" in text
    assert "`STORM_OIL_FACTOR`" in text and "used by `oil_for_night`." in text
    assert "Example:\n\n```\nfrom lanterna.weather import nights_left\n" in text
    assert "```python\nfor night in range(nights):\n    need = oil_for_night" in text and ":caption:" not in text
    assert "Note: Storms are counted first" in text
    assert "- Calm night: two litres." in text
    for dropped in ("docs team", "toctree", "maxdepth", "suppliers\n", "On this page"):
        assert dropped not in text, dropped
    assert page.metadata["title"] == "Storm nights"
    assert page.metadata["date"] == "2026-09-20"
    assert page.metadata["headings"] == [
        "Storm nights", "Storm nights > Counting storms", "Storm nights > Counting storms > How long the oil lasts"]


def test_pdf_text_layer_one_heading_per_page(pages):
    page = pages["oil-report.pdf"]
    assert page.metadata["title"] == "Oil report for the harbour office"
    assert page.metadata["headings"] == [
        "Oil report for the harbour office", "Oil report for the harbour office > Page 1",
        "Oil report for the harbour office > Page 2"]
    first, second = page.text.split("## Page 2")
    assert "## Page 1" in first and "fourteen litres" in first
    assert "Twenty litres" in second
    assert page.metadata["date"] == "2026-09-30"


def test_text_is_kept_as_it_is(pages):
    page = pages["radio-log.txt"]
    assert page.text == (PAGES / "radio-log.txt").read_text()
    assert page.metadata["title"] == "radio log" and page.metadata["headings"] == []
    assert page.metadata["date"] is None


def test_unreadable_pages_are_skipped_with_a_reason(tmp_path):
    from pypdf import PdfWriter

    scanned = PdfWriter()
    scanned.add_blank_page(width=200, height=200)
    scanned.write(tmp_path / "scan.pdf")
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4\nnot really a pdf")
    (tmp_path / "latin1.md").write_bytes("# Caf\xe9".encode("latin-1"))
    (tmp_path / "style.css").write_text("body {}")
    (tmp_path / "blank.txt").write_text("\n\n")
    (tmp_path / "big.txt").write_text("x" * 2000)
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "readme.md").write_text("# vendored")
    (tmp_path / "draft.md").write_text("# Draft")
    pages, reasons = read_all(tmp_path, exclude=["draft.md"], max_file_bytes=1000)
    assert pages == {}
    assert reasons == {
        "scan.pdf": "no text layer (scanned PDF?)",
        "broken.pdf": reasons["broken.pdf"],
        "latin1.md": "unreadable encoding (not UTF-8)",
        "style.css": "not a page (.css)",
        "blank.txt": "empty",
        "big.txt": "too large (2000 bytes > 1000)",
        "node_modules/readme.md": "vendored",
        "draft.md": "excluded by include/exclude globs",
    }
    assert reasons["broken.pdf"].startswith("unreadable PDF")


def test_fingerprint_follows_content_not_modification_time(tmp_path):
    folder = shutil.copytree(PAGES, tmp_path / "pages")
    src = DocsSource(type="docs", path=folder)
    before = docs.fingerprint(src)
    (folder / "radio-log.txt").touch()
    assert docs.fingerprint(src) == before
    (folder / "radio-log.txt").write_text("Radio log, week 39\n")
    assert docs.fingerprint(src) != before


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="docs path .* is not a folder"):
        docs.candidates(DocsSource(type="docs", path=tmp_path / "nope"))


def one_page_pdf(content: bytes) -> bytes:
    """A PDF whose one page shows `content` (a content stream, FlateDecode), with a correct xref table."""
    stream = zlib.compress(content)
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 6\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    return bytes(out + b"trailer\n<< /Size 6 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref)


def test_pages_nested_past_the_parsers_are_skipped_and_shallower_ones_read(tmp_path):
    (tmp_path / "deep.html").write_text("<html><body>" + "<div>" * 20_000 + "x" + "</div>" * 20_000)
    (tmp_path / "ok.html").write_text("<html><body>" + "<div>" * 50 + "<p>Fifty levels in.</p>" + "</div>" * 50)
    notes = [" " * (3 * level) + ".. note::\n" for level in range(200)]
    (tmp_path / "deep.rst").write_text("Deep\n====\n\n" + "\n".join(notes) + "\n" + " " * 600 + "bottom\n")
    (tmp_path / "nested.rst").write_text(
        "Nested\n======\n\n.. note::\n\n   .. warning::\n\n      Keep the oil dry.\n")
    (tmp_path / "front.md").write_text("---\ntitle: " + "[" * 20_000 + "]" * 20_000 + "\n---\n# Front\n\nBody.\n")
    pages, reasons = read_all(tmp_path)
    assert reasons == {"deep.html": "HTML nested too deeply to parse",
                       "deep.rst": "reStructuredText nested too deeply to parse"}
    assert "Fifty levels in." in pages["ok.html"].text
    assert "Note:" in pages["nested.rst"].text and "Keep the oil dry." in pages["nested.rst"].text
    assert "Body." in pages["front.md"].text  # front matter too deep for YAML: the page is read without it


def test_damaged_pdfs_give_pypdfs_own_words_as_the_reason_and_print_nothing(tmp_path, capfd):
    (tmp_path / "truncated.pdf").write_bytes(b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog" + bytes(range(256)) * 8)
    # Inflates to 5 MB of zeros from a few KB: past a 1 MB cap, so pypdf stops at the cap.
    (tmp_path / "bomb.pdf").write_bytes(one_page_pdf(bytes(5_000_000)))
    (tmp_path / "fine.pdf").write_bytes(one_page_pdf(b"BT /F1 12 Tf 72 720 Td (Trim the wicks) Tj ET"))
    pages, reasons = read_all(tmp_path, max_file_bytes=1_000_000)
    assert reasons["truncated.pdf"].startswith("unreadable PDF (")
    assert reasons["truncated.pdf"].endswith("; pypdf: EOF marker not found)")
    assert reasons["bomb.pdf"] == "unreadable PDF (a stream inflates to more than 1000000 bytes)"
    assert "Trim the wicks" in pages["fine.pdf"].text
    assert capfd.readouterr() == ("", "")


def test_pages_beautifulsoup_warns_about_are_read_without_a_warning(tmp_path):
    (tmp_path / "feed.html").write_text('<?xml version="1.0"?><rss><channel><title>Lamp news</title></channel></rss>')
    (tmp_path / "link.html").write_text("https://lanterna.example/docs/index.html")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning that escaped would fail the read
        pages, reasons = read_all(tmp_path)
    assert reasons == {} and set(pages) == {"feed.html", "link.html"}


def test_what_is_not_a_regular_file_is_skipped_with_what_it_is(tmp_path):
    (tmp_path / "page.md").write_text("# Page\n\nText.\n")
    (tmp_path / "loop.md").symlink_to("loop.md")
    (tmp_path / "dangling.md").symlink_to("missing.md")
    (tmp_path / "link.md").symlink_to("page.md")
    os.mkfifo(tmp_path / "pipe.md")  # opened, it would wait for a writer forever
    (tmp_path / "nul.md").write_bytes(b"# Nul\n\nA \0 in the text.\n")
    pages, reasons = read_all(tmp_path)
    assert set(pages) == {"page.md", "link.md"}
    assert reasons == {"loop.md": "symlink loop", "dangling.md": "broken symlink (its target does not exist)",
                       "pipe.md": "not a regular file (a named pipe)", "nul.md": "binary (NUL bytes)"}
    assert docs.fingerprint(DocsSource(type="docs", path=tmp_path))  # hashes what it can, blocks on nothing


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its permissions")
def test_a_page_without_read_permission_is_skipped(tmp_path):
    (tmp_path / "secret.md").write_text("# Secret\n")
    (tmp_path / "secret.md").chmod(0)
    _, reasons = read_all(tmp_path)
    assert reasons == {"secret.md": "unreadable (Permission denied)"}
