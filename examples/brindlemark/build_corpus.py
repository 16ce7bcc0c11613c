"""Build the Brindlemark example repository from commits/ and write it as one git bundle.

    .venv/bin/python examples/brindlemark/build_corpus.py [OUT.bundle]

Each folder commits/NN-<slug>/ is one commit, applied in order:

    message.txt   the commit message: a subject line, a blank line, the body
    files/        files the commit adds or replaces, at their paths in the repository
    edits.txt     exact replacements in files that exist already (format below)
    delete.txt    paths the commit removes, one a line
    tag.txt       a lightweight tag to put on the commit, e.g. v0.1.0

edits.txt holds blocks of

    --- path/in/repo.py
    <<<
    text as it is now (must occur exactly once)
    ===
    text it becomes
    >>>

so a commit that changes one default shows as that change and nothing else.

The history is the same on every machine: the author, committer and dates are
fixed (commit N is dated 2026-03-02 plus N-1 days), and git runs with no system
or user configuration (no signing, hooks, templates or line-ending rewrites
from the machine). So the commit ids are the same wherever the script runs;
the script prints HEAD's id. Packing runs on one thread so the bundle's bytes
are the same too.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
COMMITS = HERE / "commits"
DEFAULT_OUT = HERE / "brindlemark.bundle"
AUTHOR = ("Brindlemark Maintainers", "maintainers@brindlemark.example")
FIRST_DAY = date(2026, 3, 2)
TIME_OF_DAY = "09:30:00+00:00"


class CorpusError(RuntimeError):
    """A commit folder that cannot be applied; the message names the folder and what is wrong."""


def commit_folders() -> list[Path]:
    return sorted(p for p in COMMITS.iterdir() if p.is_dir())


def build(out: Path) -> str:
    """Write the bundle to `out` and return HEAD's commit id."""
    out = out.resolve()
    with tempfile.TemporaryDirectory(prefix="brindlemark-") as tmp:
        work = Path(tmp) / "repo"
        work.mkdir()
        env = _git_env(Path(tmp))
        _git(work, env, "init", "--quiet", "--initial-branch=main")
        for n, folder in enumerate(commit_folders()):
            _apply(folder, work)
            stamp = f"{FIRST_DAY + timedelta(days=n)}T{TIME_OF_DAY}"
            dated = {**env, "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}
            _git(work, dated, "add", "--all")
            message = _message(folder)
            _git(work, dated, "commit", "--quiet", "--cleanup=verbatim", "--file=-", input=message)
            tag = folder / "tag.txt"
            if tag.is_file():
                _git(work, dated, "tag", tag.read_text().strip())
        out.parent.mkdir(parents=True, exist_ok=True)
        out.unlink(missing_ok=True)
        _git(work, env, "-c", "pack.threads=1", "bundle", "create", "--quiet", str(out), "--all")
        return _git(work, env, "rev-parse", "HEAD").strip()


def _apply(folder: Path, work: Path) -> None:
    files = folder / "files"
    if files.is_dir():
        for src in sorted(p for p in files.rglob("*") if p.is_file()):
            dest = work / src.relative_to(files)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(src.read_bytes())
    edits = folder / "edits.txt"
    if edits.is_file():
        for path, old, new in _parse_edits(edits):
            target = work / path
            if not target.is_file():
                raise CorpusError(f"{folder.name}: edits.txt changes {path}, which does not exist yet")
            text = target.read_text()
            if text.count(old) != 1:
                raise CorpusError(f"{folder.name}: edits.txt expects this text exactly once in {path} "
                                  f"(found {text.count(old)}):\n{old}")
            target.write_text(text.replace(old, new))
    delete = folder / "delete.txt"
    if delete.is_file():
        for line in delete.read_text().splitlines():
            if line.strip():
                (work / line.strip()).unlink()
    if not any((folder / name).exists() for name in ("files", "edits.txt", "delete.txt")):
        raise CorpusError(f"{folder.name}: changes nothing (no files/, edits.txt or delete.txt)")


def _parse_edits(path: Path) -> list[tuple[str, str, str]]:
    """(file, old text, new text) of each block; blocks are read line by line so any text can be replaced."""
    lines = path.read_text().split("\n")
    edits, i = [], 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        if not lines[i].startswith("--- ") or lines[i + 1] != "<<<":
            raise CorpusError(f"{path}: line {i + 1}: expected '--- <path>' then '<<<'")
        target, i = lines[i][4:].strip(), i + 2
        old, i = _block(lines, i, "===", path)
        new, i = _block(lines, i, ">>>", path)
        edits.append((target, old, new))
    return edits


def _block(lines: list[str], i: int, end: str, path: Path) -> tuple[str, int]:
    start = i
    while i < len(lines) and lines[i] != end:
        i += 1
    if i == len(lines):
        raise CorpusError(f"{path}: a block opened at line {start} has no '{end}'")
    return "\n".join(lines[start:i]), i + 1


def _message(folder: Path) -> str:
    path = folder / "message.txt"
    if not path.is_file():
        raise CorpusError(f"{folder.name}: no message.txt")
    lines = [line.rstrip() for line in path.read_text().strip().splitlines()]
    if len(lines) > 1 and lines[1]:
        raise CorpusError(f"{folder.name}: message.txt needs a blank line after the subject")
    return "\n".join(lines) + "\n"


def _git_env(home: Path) -> dict[str, str]:
    # Nothing from the machine: no system or user config, a fixed identity, time zone and locale.
    name, email = AUTHOR
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LC_ALL": "C", "TZ": "UTC",
        "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TEMPLATE_DIR": "",
        "GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email,
    }


def _git(work: Path, env: dict[str, str], *args: str, input: str | None = None) -> str:
    res = subprocess.run(["git", "-C", str(work), *args], env=env, input=input, capture_output=True, text=True)
    if res.returncode != 0:
        raise CorpusError(f"git {' '.join(args[:2])} failed: {res.stderr.strip()}")
    return res.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT, help=f"bundle to write ({DEFAULT_OUT.name})")
    args = parser.parse_args(argv)
    if shutil.which("git") is None:
        print("build_corpus: git is not installed", file=sys.stderr)
        return 1
    try:
        print(build(args.out))
    except CorpusError as err:
        print(f"build_corpus: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
