"""A sweep's results: every finished trial ranked by the sweep's metric, as a table, JSON lines and a plot."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .config import SweepConfig, SweepRange
from .progress import console
from .records import atomic_write, write_jsonl

LOWER_IS_BETTER = {"val_loss": True, "knowledge_f1": False}
# The columns a choice is made by or checked against; results.jsonl keeps every number.
SHOWN = ("val_loss", "knowledge_f1", "knowledge_exact_match", "trained_f1", "train_loss", "train_seconds")


def settings_of(trial) -> dict[str, Any]:
    """A trial's settings as the config takes them: lists and mappings were stored as JSON text."""
    import json

    return {k: json.loads(v) if isinstance(v, str) and v[:1] in "[{" else v for k, v in trial.params.items()}


def rows_of(sweep: SweepConfig, trials: list) -> list[dict[str, Any]]:
    rows = []
    for t in trials:
        rows.append({"trial": t.user_attrs.get("folder", str(t.number)), **settings_of(t),
                     **t.user_attrs.get("results", {})})
    lower = LOWER_IS_BETTER[sweep.metric]
    return sorted(rows, key=lambda r: r[sweep.metric] if lower else -r[sweep.metric])


def write_results(folder: Path, sweep: SweepConfig, trials: list, best: dict[str, Any] | None) -> Path:
    rows = rows_of(sweep, trials)
    write_jsonl(folder / "results.jsonl", rows + ([best] if best else []))
    params = list(sweep.space)
    columns = ["trial", *params, *(c for c in SHOWN if any(c in r for r in rows))]
    direction = "lowest" if LOWER_IS_BETTER[sweep.metric] else "highest"
    lines = [f"# Sweep\n\n{len(rows)} trials ({sweep.sampler}), ranked by {sweep.metric}, {direction} first. "
             "Knowledge scores are on the selection half of the knowledge questions; test results are not shown, "
             "so they cannot choose.\n",
             "| rank | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for rank, r in enumerate(rows, 1):
        cells = [_cell(r.get(c)) for c in columns]
        if rank == 1:
            cells[0] = f"**{cells[0]}** (best)"
        lines.append(f"| {rank} | " + " | ".join(cells) + " |")
    if best:
        lines += ["", "The best setting trained again on train + val (its val loss is no longer held out; its "
                  "knowledge scores are on the other half of the questions, never used to choose):", "",
                  "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
                  "| " + " | ".join(_cell(best.get(c)) for c in columns) + " |"]
    path = folder / "results.md"
    if rows:
        plot(rows, sweep, folder / "plot.png")
        lines += ["", "![metric by setting](plot.png)"]
    atomic_write(path, "\n".join(lines) + "\n")
    console.print(f"sweep: {len(rows)} trials finished, table in {path}")
    return path


def plot(rows: list[dict[str, Any]], sweep: SweepConfig, path: Path) -> None:
    """The metric against each setting: one panel per setting, the best trial marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(sweep.space)
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        values = [r.get(key) for r in rows]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        xs = values if numeric else [str(v) for v in values]
        ys = [r[sweep.metric] for r in rows]
        ax.scatter(xs, ys, color="tab:blue")
        ax.scatter([xs[0]], [ys[0]], color="tab:red", label="best", zorder=3)
        spec = sweep.space[key]
        if numeric and (isinstance(spec, SweepRange) and spec.log or _spans_decades(values)):
            ax.set_xscale("log")
        ax.set_xlabel(key)
        ax.set_ylabel(sweep.metric)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _spans_decades(values: list) -> bool:
    positive = [v for v in values if v > 0]
    return len(positive) == len(values) and max(positive) / min(positive) >= 30


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return "" if value is None else str(value)
