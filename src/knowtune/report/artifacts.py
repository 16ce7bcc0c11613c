"""Reading what the stages wrote. Every reader returns None or an empty value when a stage has not run (or
was interrupted before its manifest), so a section for it is left out rather than guessed."""

from __future__ import annotations

import json
from pathlib import Path

from ..records import read_json
from ..runs import RunDir, read_manifest

STAGES = ("ingest", "base", "tokenizer", "chunk", "examples", "curate", "train", "eval", "export")

# Plots the report draws itself go here, not into a stage folder: a stage's folder is hashed into its
# manifest, and a new file there would make the stage look edited and rerun.
PLOTS = "report_plots"


def manifest(run: RunDir, stage: str) -> dict | None:
    return read_manifest(run.stage(stage))


def counts(run: RunDir, stage: str) -> dict:
    return (manifest(run, stage) or {}).get("counts", {})


def results(run: RunDir) -> dict | None:
    path = run.stage("eval") / "results.json"
    return read_json(path) if manifest(run, "eval") and path.is_file() else None


def generations(run: RunDir) -> list[dict]:
    path = run.stage("eval") / "generations.jsonl"
    return list(jsonl(path)) if manifest(run, "eval") and path.is_file() else []


def metrics(run: RunDir) -> list[dict]:
    path = run.stage("train") / "metrics.jsonl"
    return list(jsonl(path)) if path.is_file() else []


def jsonl(path: Path):
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def plots_dir(run: RunDir) -> Path:
    folder = run.root / PLOTS
    folder.mkdir(parents=True, exist_ok=True)
    return folder
