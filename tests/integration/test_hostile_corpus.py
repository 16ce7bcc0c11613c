"""A corpus built to break ingest: every bad file becomes a skip with its reason, and nothing else is printed.

The corpus is generated here, in tmp_path, so no large or hostile file is kept
in the repository. `knowtune ingest` runs as a subprocess under a small wrapper
that reports the peak RSS of the ingest (the largest of its processes, git
included), so a file read whole where only its size was needed shows up.
"""

import json
import os
import random
import re
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest

from conftest import git
from knowtune.records import read_jsonl

pytestmark = pytest.mark.slow

KNOWTUNE = Path(sys.executable).parent / "knowtune"
HUGE_BYTES = 101 * 2**20
PEAK_RSS_LIMIT_MB = 400
# Lines knowtune itself prints for an ingest; anything else on the console is a library talking or a traceback.
OWN_LINES = re.compile(
    r"^(?:ingest: running|ingest: unchanged, skipped|ingest: done in [\d.]+s .*"
    r"|ingest: skipped \d+ \(.*\); see \S+skipped\.jsonl)$"
)
# The reason the generic per-file guard gives (knowtune.sources.guard.GUARD_REASON); every file of this
# corpus deserves a specific one, so a reason starting so is a bug or a case still to handle.
GUARD_REASON = re.compile(r"^reader failed \(")

# The wrapper: runs the command, then writes the peak RSS (KiB on Linux) of its waited-for descendants.
MEASURE = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[2:]).returncode\n"
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(code)\n"
)


def notebook(cells: list[dict], metadata: dict | None = None) -> str:
    return json.dumps({"cells": cells, "metadata": metadata or {"kernelspec": {"language": "python"}},
                       "nbformat": 4, "nbformat_minor": 5})


def nested_json(depth: int) -> str:
    return "[" * depth + "]" * depth


def pdf(deflated: bytes) -> bytes:
    """A one-page PDF whose page content is one FlateDecode stream, with a correct xref table."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(deflated) + deflated + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def zeros_bomb(megabytes: int) -> bytes:
    """A PDF whose content stream inflates to `megabytes` MB of zeros from a few hundred KB."""
    packer, stream, block = zlib.compressobj(9), bytearray(), bytes(2**20)
    for _ in range(megabytes):
        stream += packer.compress(block)
    return pdf(bytes(stream + packer.flush()))


def nested_rst_directives(depth: int) -> str:
    lines = ["Deep notes", "==========", ""]
    for level in range(depth):
        lines += [" " * (3 * level) + ".. note::", ""]
    lines.append(" " * (3 * depth) + "The lamp is at the bottom of all the notes.")
    return "\n".join(lines) + "\n"


def nested_rst_quotes(depth: int) -> str:
    lines = ["Deep quotes", "===========", ""]
    for level in range(depth):
        lines += [" " * (2 * level) + f"- item at level {level}", ""]
    return "\n".join(lines) + "\n"


def write_huge_markdown(path: Path) -> None:
    line = b"The keeper trims every wick before dusk and writes the oil level in the log.\n"
    block = line * (2**20 // len(line))
    with path.open("wb") as fh:
        while fh.tell() + len(block) <= HUGE_BYTES:
            fh.write(block)
        rest = HUGE_BYTES - fh.tell()
        fh.write((line * (rest // len(line) + 1))[:rest])


# (source, path) -> what ingest must do with it: a regex its skip reason matches, or "document".
EXPECTED = {
    ("repo", "src/lamp.py"): "document",
    ("repo", "README.md"): "document",
    ("repo", "src/random_bytes.py"): r"^(binary|unreadable encoding \(not UTF-8\))",
    ("repo", "src/latin1.py"): r"^unreadable encoding \(not UTF-8\)$",
    ("repo", "src/nul.py"): r"^binary",
    ("repo", "src/empty.py"): r"^empty$",
    ("repo", "notebooks/truncated.ipynb"): r"^unreadable notebook",
    ("repo", "notebooks/deep_metadata.ipynb"): r"^notebook nested too deeply to parse$",
    ("repo", "notebooks/deep_outputs.ipynb"): r"^notebook nested too deeply to parse$",
    ("repo", "/".join(["deep"] * 60) + "/bottom.py"): "document",
    ("repo", "docs/huge.md"): rf"^too large \({HUGE_BYTES} bytes > 200000\)$",
    ("repo", "docs/loop.md"): r"^symlink loop$",
    ("repo", "docs/dangling.md"): r"^broken symlink",
    ("repo", "docs/linked_folder"): r"^not a regular file \(a folder\)$",
    ("repo", "docs/pipe.md"): r"^not a regular file \(a named pipe\)$",
    ("repo", "docs/bomb.pdf"): r"^binary$",
    ("repo", "docs/corrupt.pdf"): r"^binary$",
    ("docs", "deep.html"): r"^HTML nested too deeply to parse$",
    ("docs", "deep_directives.rst"): r"^reStructuredText nested too deeply to parse$",
    ("docs", "deep_lists.rst"): "document",
    ("docs", "deep_front_matter.md"): "document",
    ("docs", "feed.html"): "document",
    ("docs", "url.html"): "document",
    ("docs", "huge.md"): rf"^too large \({HUGE_BYTES} bytes > 20000000\)$",
    ("docs", "bomb.pdf"): r"^unreadable PDF \(a stream inflates to more than 20000000 bytes\)$",
    ("docs", "corrupt.pdf"): r"^unreadable PDF \(.+; pypdf: EOF marker not found\)$",
    ("docs", "latin1.md"): r"^unreadable encoding \(not UTF-8\)$",
    ("docs", "nul.md"): r"^binary",
    ("docs", "empty.md"): r"^empty$",
    ("docs", "loop.md"): r"^symlink loop$",
    ("docs", "dangling.md"): r"^broken symlink",
    ("docs", "linked_folder"): r"^not a page \(no suffix\)$",
    ("docs", "pipe.md"): r"^not a regular file \(a named pipe\)$",
}
# Without read permission: only where the tests do not run as root, who reads it anyway.
LOCKED = {("repo", "docs/locked.md"): r"^unreadable \(Permission denied\)$",
          ("docs", "locked.md"): r"^unreadable \(Permission denied\)$"}
# Rewritten while ingest runs: read whole, or skipped as changed, never a traceback.
CHANGING = {("repo", "docs/changing.txt"), ("docs", "changing.txt")}
CHANGING_REASONS = re.compile(r"^(changed while read|empty$|too large)")


def build_corpus(root: Path) -> Path:
    repo = root / "repo"
    docs, src, notebooks = repo / "docs", repo / "src", repo / "notebooks"
    for folder in (docs, src, notebooks):
        folder.mkdir(parents=True)
    rng = random.Random(7)
    (repo / "README.md").write_text("# The lighthouse\n\nA corpus that tries to break ingest.\n")
    (src / "lamp.py").write_text('"""The lamp."""\n\n\ndef refill(litres: float) -> float:\n    return litres * 2\n')
    (src / "random_bytes.py").write_bytes(rng.randbytes(64 * 1024))
    (src / "latin1.py").write_bytes("# Le phare: caf\xe9, cr\xe8me, na\xefve\nprint('\xe9t\xe9')\n".encode("latin-1"))
    (src / "nul.py").write_bytes(b"x = 1\n\0\0\0\ny = 2\n")
    (src / "empty.py").write_bytes(b"")
    good = notebook([{"cell_type": "code", "source": "print('lamp')", "metadata": {}, "outputs": []}])
    (notebooks / "truncated.ipynb").write_text(good[: len(good) // 2])
    # 100,000 levels: far past the JSON decoder's recursion limit, still a small file.
    (notebooks / "deep_metadata.ipynb").write_text(notebook(
        [{"cell_type": "code", "source": "x = 1", "metadata": {}, "outputs": []}]).replace(
        '"metadata": {}', '"metadata": {"deep": ' + nested_json(100_000) + "}", 1))
    (notebooks / "deep_outputs.ipynb").write_text(notebook(
        [{"cell_type": "code", "source": "x = 1", "metadata": {}, "outputs": []}]).replace(
        '"outputs": []', '"outputs": [{"output_type": "stream", "text": ' + nested_json(100_000) + "}]", 1))
    deep = repo.joinpath(*["deep"] * 60)
    deep.mkdir(parents=True)
    (deep / "bottom.py").write_text("DEPTH = 60\n")

    (docs / "deep.html").write_text("<html><body>" + "<div>" * 20_000 + "bottom" + "</div>" * 20_000
                                    + "</body></html>")
    (docs / "deep_directives.rst").write_text(nested_rst_directives(600))
    (docs / "deep_lists.rst").write_text(nested_rst_quotes(600))
    (docs / "deep_front_matter.md").write_text(
        "---\ntitle: " + nested_json(20_000) + "\n---\n# Front matter\n\nToo deep to read, the page still is.\n")
    # XML served as HTML, and a page that is only a URL: both make BeautifulSoup warn.
    (docs / "feed.html").write_text('<?xml version="1.0"?><rss><channel><title>Lamp news</title>'
                                    "<item><description>New wicks arrived.</description></item></channel></rss>")
    (docs / "url.html").write_text("https://lanterna.example/docs/index.html")
    write_huge_markdown(docs / "huge.md")
    (docs / "bomb.pdf").write_bytes(zeros_bomb(200))
    (docs / "corrupt.pdf").write_bytes(b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog" + rng.randbytes(4096))
    (docs / "latin1.md").write_bytes("# Caf\xe9\n\nLe phare est allum\xe9.\n".encode("latin-1"))
    (docs / "nul.md").write_bytes(b"# Nul\n\nA page with \0 in it.\n")
    (docs / "empty.md").write_bytes(b"")
    (docs / "loop.md").symlink_to("loop.md")
    (docs / "dangling.md").symlink_to("missing.md")
    (docs / "linked_folder").symlink_to("../src")
    (docs / "pipe.md").write_text("# A page, until it becomes a pipe\n")
    (docs / "changing.txt").write_text("The log, rewritten while it is read.\n")

    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "A hostile corpus", date="2026-10-01T12:00:00+00:00")
    (src / "lamp.py").write_text('"""The lamp."""\n\n\ndef refill(litres: float) -> float:\n    return litres * 3\n')
    git(repo, "commit", "-q", "-am", "Refill more", date="2026-10-02T12:00:00+00:00")
    # git keeps no named pipes: the committed page is replaced by one in the working tree.
    (docs / "pipe.md").unlink()
    os.mkfifo(docs / "pipe.md")
    if os.geteuid() != 0:
        (docs / "locked.md").write_text("# Locked\n")
        (docs / "locked.md").chmod(0)
    return repo


def keep_changing(path: Path, stop: threading.Event) -> None:
    """Rewrite `path` with a different size each time until told to stop (a file changing while it is read)."""
    n = 0
    while not stop.is_set():
        n += 1
        path.write_text("The log, rewritten while it is read.\n" * (1 + n % 5000))
        time.sleep(0.0005)


def test_hostile_corpus_is_skipped_file_by_file_quietly_and_in_bounded_memory(tmp_path):
    repo = build_corpus(tmp_path)
    config = tmp_path / "hostile.yaml"
    config.write_text(f"name: hostile\nruns_dir: {tmp_path / 'runs'}\nsources:\n"
                      f"  - {{type: repo, path: {repo}}}\n  - {{type: docs, path: {repo / 'docs'}}}\n"
                      f"  - {{type: git, path: {repo}}}\n")
    rss_file = tmp_path / "peak_rss_kib"
    stop = threading.Event()
    writer = threading.Thread(target=keep_changing, args=(repo / "docs" / "changing.txt", stop), daemon=True)
    writer.start()
    try:
        out = subprocess.run([sys.executable, "-c", MEASURE, str(rss_file), str(KNOWTUNE), "ingest", str(config)],
                             capture_output=True, text=True, env={**os.environ, "COLUMNS": "1000"}, timeout=600)
    finally:
        stop.set()
        writer.join()
    console = out.stdout + out.stderr
    assert out.returncode == 0, console

    strangers = [line for line in console.splitlines() if line.strip() and not OWN_LINES.match(line)]
    assert not strangers, "printed besides knowtune's own lines:\n" + "\n".join(strangers[:20])

    documents_dir = tmp_path / "runs" / "hostile" / "documents"
    skipped = {(s["source"].split(":")[0], s["path"]): s["reason"]
               for s in read_jsonl(documents_dir / "skipped.jsonl")}
    documents = list(read_jsonl(documents_dir / "documents.jsonl"))
    read = {(d["source"].split(":")[0], d["path"]) for d in documents}
    guarded = {key: reason for key, reason in skipped.items() if GUARD_REASON.match(reason)}
    assert not guarded, f"only the generic guard caught these (a bug, or a case wanting its own reason): {guarded}"
    for key, expected in {**EXPECTED, **(LOCKED if os.geteuid() != 0 else {})}.items():
        if expected == "document":
            assert key in read, (key, skipped.get(key))
        else:
            assert key in skipped, (key, "read" if key in read else "neither read nor skipped")
            assert re.search(expected, skipped[key]), (key, skipped[key])
    for key in CHANGING:
        assert key in read or CHANGING_REASONS.match(skipped.get(key, "")), (key, skipped.get(key))
    # Nothing dropped silently: every file of both folders is a document or a skip.
    for source, folder in (("repo", repo), ("docs", repo / "docs")):
        on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*")
                   if ".git" not in p.relative_to(folder).parts and (p.is_symlink() or not p.is_dir())}
        missing = {p for p in on_disk if (source, p) not in read and (source, p) not in skipped}
        assert not missing, (source, missing)

    # The git history keeps the huge file's header, with a note in place of its 101 MB diff.
    commits = {d["metadata"]["title"]: d["text"] for d in documents if d["source"].startswith("git:")}
    first = commits["A hostile corpus"]
    note = f"diff --git a/docs/huge.md b/docs/huge.md\ndiff of docs/huge.md left out: {HUGE_BYTES} bytes\n"
    assert f"\nDiff:\n{note}" in first
    assert "  docs/huge.md (+- --)\n" in first and "diff --git a/README.md b/README.md\n" in first
    assert "[... diff truncated:" in first  # the rest of the first commit's diff, cut at max_diff_chars
    assert "diff --git a/src/lamp.py b/src/lamp.py\n" in commits["Refill more"]
    assert "+    return litres * 3" in commits["Refill more"]

    peak_mb = int(rss_file.read_text()) / 1024
    assert peak_mb < PEAK_RSS_LIMIT_MB, f"peak RSS of the ingest {peak_mb:.0f} MB"
