"""Run directories and stage manifests: a stage reruns only when what it reads changed.

Each stage writes its artifact folder and, last, a manifest.json naming the
hash of its settings, the hashes of its inputs (by content, never by
modification time) and the hash of every file it wrote. The manifest is
removed when a stage starts, so a stage killed midway has none and reruns.
"""

from __future__ import annotations

import hashlib
import platform
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from rich.console import Console

from .config import stage_hash
from .distributed import is_main
from .records import read_json, write_json

MANIFEST = "manifest.json"
VERSIONED = ("knowtune", "torch", "transformers", "trl", "tokenizers", "datasets", "accelerate", "pydantic")

# The folder each stage writes under runs/<name>/ (DESIGN.md's layout).
STAGE_DIRS = {
    "ingest": "documents",
    "base": "base",
    "tokenizer": "tokenizer",
    "chunk": "chunks",
    "examples": "examples",
    "curate": "dataset",
    "train": "train",
    "eval": "eval",
    "export": "export",
}


class StageError(RuntimeError):
    """A stage cannot run; the message says what to do."""


@dataclass(frozen=True)
class RunDir:
    root: Path

    def stage(self, name: str) -> Path:
        return self.root / STAGE_DIRS[name]

    @property
    def config_file(self) -> Path:
        return self.root / "config.yaml"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _is_temporary(rel: Path) -> bool:
    return rel.name.startswith(".") and rel.name.endswith(".tmp")


def hash_outputs(folder: Path, exclude: tuple[str, ...] = ()) -> dict[str, str]:
    """sha256 of every file under `folder` except the manifest, temp files and `exclude` subfolders."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if not path.is_file() or rel.as_posix() == MANIFEST or _is_temporary(rel):
            continue
        if rel.parts and rel.parts[0] in exclude:
            continue
        out[rel.as_posix()] = file_sha256(path)
    return out


def combined_hash(parts: dict[str, str]) -> str:
    h = hashlib.sha256()
    for key in sorted(parts):
        h.update(f"{key}\x1f{parts[key]}\n".encode())
    return h.hexdigest()[:16]


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def read_manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        return read_json(path)
    except ValueError:
        return None


def input_hash(folder: Path, stage: str) -> str:
    """The output hash of a finished upstream stage, or a clear error if it has not run."""
    manifest = read_manifest(folder)
    if manifest is None:
        raise StageError(f"{folder}: no finished {stage} stage here; run `knowtune {cli_name(stage)}` first")
    return manifest["output_hash"]


def cli_name(stage: str) -> str:
    return "build" if stage in ("base", "tokenizer", "chunk", "examples") else stage


def is_fresh(folder: Path, settings_hash: str, inputs: dict[str, str], exclude: tuple[str, ...] = ()) -> bool:
    manifest = read_manifest(folder)
    if manifest is None:
        return False
    if manifest.get("config_hash") != settings_hash or manifest.get("inputs") != inputs:
        return False
    # The files must still be the ones the manifest describes (nobody edited or deleted them).
    return hash_outputs(folder, exclude) == manifest.get("outputs")


def run_stage(
    name: str,
    folder: Path,
    settings: Any,
    inputs: dict[str, str],
    fn: Callable[[Any], dict[str, Any]],
    console: Console,
    force: bool = False,
    exclude: tuple[str, ...] = (),
) -> dict:
    """Run `fn(settings)` unless its settings and inputs match the last finished run; return the manifest.

    `fn` gets the very value the manifest hashes, so what the stage reads is what decides whether it reruns."""
    settings_hash = stage_hash(settings)
    if not force and is_fresh(folder, settings_hash, inputs, exclude):
        console.print(f"[dim]{name}: unchanged, skipped[/dim]")
        return read_manifest(folder)
    if not is_main():  # another process of a distributed launch: it trains, the main process writes
        fn(settings)
        return {}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).unlink(missing_ok=True)
    for stale in folder.glob(".*.tmp"):
        stale.unlink()
    console.print(f"[bold]{name}[/bold]: running")
    start = time.perf_counter()
    counts = fn(settings) or {}
    seconds = time.perf_counter() - start
    outputs = hash_outputs(folder, exclude)
    manifest = {
        "stage": name,
        "config_hash": settings_hash,
        "config": settings.model_dump(mode="json") if hasattr(settings, "model_dump") else settings,
        "inputs": inputs,
        "outputs": outputs,
        "output_hash": combined_hash(outputs),
        "counts": counts,
        "seconds": round(seconds, 2),
        "versions": versions(),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(folder / MANIFEST, manifest)
    console.print(f"{name}: done in {seconds:.1f}s {_summary(counts)}")
    return manifest


def _summary(counts: dict[str, Any]) -> str:
    flat = [f"{k}={v}" for k, v in counts.items() if isinstance(v, (int, float, str))]
    return ("(" + ", ".join(flat[:8]) + ")") if flat else ""
