"""The few git commands ingest needs, with errors a user can act on."""

from __future__ import annotations

import subprocess
from pathlib import Path


class SourceError(RuntimeError):
    """A source cannot be read; the message names it and says why."""


def git(root: Path, *args: str) -> str:
    res = subprocess.run(["git", "-C", str(root), *args], capture_output=True)
    if res.returncode != 0:
        msg = res.stderr.decode("utf-8", "replace").strip().splitlines()
        raise SourceError(f"{root}: git {' '.join(args[:2])} failed: {msg[-1] if msg else res.returncode}")
    return res.stdout.decode("utf-8", "replace")


def head_date(root: Path) -> str | None:
    """Committer date (YYYY-MM-DD) of HEAD, or None outside git or in a repository with no commits."""
    res = subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%cs"], capture_output=True)
    out = res.stdout.decode().strip()
    return out if res.returncode == 0 and out else None
