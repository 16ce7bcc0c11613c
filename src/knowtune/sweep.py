"""Hyperparameter sweeps: every combination of the grid's train and eval settings, on one dataset.

The dataset stages run once; each trial trains and evaluates in
runs/<name>/sweep/<trial>/. Trials are ordinary stages with manifests, so a
sweep that is stopped and started again skips the trials that finished, and a
trial cut mid-training resumes from its last complete checkpoint.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Config, ConfigError, apply_override, dump_config, validate
from .progress import console
from .records import atomic_write, write_jsonl
from .runs import STAGE_DIRS, RunDir, read_manifest

DATA_STAGES = ["ingest", "tokenizer", "chunk", "examples", "curate"]
TRIAL_STAGES = ("train", "eval")


@dataclass(frozen=True)
class TrialDir(RunDir):
    """A run directory whose train and eval live in the trial's folder, the rest in the sweep's run."""

    trial: Path = Path()

    def stage(self, name: str) -> Path:
        return self.trial / STAGE_DIRS[name] if name in TRIAL_STAGES + ("export",) else super().stage(name)


def trials(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    for key, values in grid.items():
        if not key.startswith(("train.", "eval.")):
            raise ConfigError(f"sweep: {key!r} is not a train.* or eval.* setting; a sweep compares trainings on "
                              "one dataset, so data settings cannot vary")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweep: {key} must list at least one value, got {values!r}")
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def trial_name(index: int, settings: dict[str, Any]) -> str:
    parts = [f"{k.split('.')[-1]}={v}" for k, v in settings.items()]
    return f"{index:02d}-" + "_".join(parts).replace("/", "-").replace(" ", "")


def run_sweep(cfg: Config, raw: dict) -> Path:
    """Run every trial not finished yet; write sweep/results.jsonl and results.md; return the table's path."""
    from .pipeline import quiet_libraries, run_stages, stages
    from .runs import input_hash, run_stage

    grid = trials(cfg.sweep)
    if not grid:
        raise ConfigError("sweep: the config has no sweep grid; add e.g. sweep: {train.learning_rate: [1e-3, 3e-3]}")
    run = run_stages(cfg, DATA_STAGES)
    quiet_libraries()
    rows = []
    for index, settings in enumerate(grid):
        name = trial_name(index, settings)
        trial_raw = json.loads(json.dumps(raw))
        trial_raw.pop("sweep", None)
        for key, value in settings.items():
            apply_override(trial_raw, f"{key}={json.dumps(value)}", where=f"sweep trial {name}")
        trial_cfg = validate(trial_raw, where=f"sweep trial {name}")
        folder = run.root / "sweep" / name
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / "config.yaml", dump_config(trial_cfg))
        console.print(f"[bold]sweep[/bold]: trial {index + 1}/{len(grid)} {name}")
        trial_run = TrialDir(run.root, folder)
        plan = stages(trial_cfg, trial_run)
        for stage_name in TRIAL_STAGES:
            stage = plan[stage_name]
            inputs = {up: input_hash(trial_run.stage(up), up) for up in stage.upstream}
            run_stage(stage_name, trial_run.stage(stage_name), stage.settings, inputs, stage.run, console,
                      exclude=stage.exclude)
        rows.append(result_row(name, settings, trial_run))
    return write_table(run.root / "sweep", rows)


def result_row(name: str, settings: dict[str, Any], run: TrialDir) -> dict[str, Any]:
    train = (read_manifest(run.stage("train")) or {}).get("counts", {})
    evaluation = (read_manifest(run.stage("eval")) or {}).get("counts", {})
    metrics = {k: v for k, v in evaluation.items() if isinstance(v, (int, float))}
    return {"trial": name, **settings, "train_loss": train.get("train_loss"), "eval_loss": train.get("eval_loss"),
            "train_seconds": train.get("train_seconds"), **{f"eval.{k}": v for k, v in metrics.items()}}


def write_table(folder: Path, rows: list[dict[str, Any]]) -> Path:
    write_jsonl(folder / "results.jsonl", rows)
    # The table keeps the columns a choice is made by; results.jsonl has every number.
    columns = [k for k in dict.fromkeys(k for r in rows for k in r)
               if not k.startswith("eval.") or k.endswith(("_loss", "_f1", "exact_match")) and "unigram" not in k]
    losses = [r.get("eval_loss") for r in rows]
    finite = [x for x in losses if isinstance(x, float) and math.isfinite(x)]
    best = min(finite) if finite else None
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        cells = [_cell(r.get(c)) for c in columns]
        if best is not None and r.get("eval_loss") == best:
            cells[0] = f"**{cells[0]}** (best)"
        lines.append("| " + " | ".join(cells) + " |")
    path = folder / "results.md"
    atomic_write(path, "# Sweep\n\nLowest validation loss in bold.\n\n" + "\n".join(lines) + "\n")
    console.print(f"sweep: {len(rows)} trials, table in {path}")
    return path


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)
