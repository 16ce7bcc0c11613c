"""What training reports while it runs: a live line on the console and metrics.jsonl on disk."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.live import Live
from transformers import TrainerCallback

from ..distributed import is_main
from ..progress import console


class MetricsCallback(TrainerCallback):
    """Appends every log to metrics.jsonl (flushed per line, so a killed run keeps its curve)."""

    def __init__(self, path: Path, resumed_at: int = 0):
        self.path = path
        if resumed_at and path.is_file() and is_main():
            # rows logged after the checkpoint will be logged again by the resumed run
            rows = [line for line in path.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] <= resumed_at]
            path.write_text("".join(r + "\n" for r in rows))
        self.start = time.perf_counter()
        self.next_print = 0.0
        self.last: dict = {}
        self.live: Live | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if console.is_terminal and state.is_world_process_zero:
            self.live = Live(console=console, transient=True, refresh_per_second=4)
            self.live.start()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero:
            return
        seconds = time.perf_counter() - self.start
        row = {"step": state.global_step, "epoch": round(state.epoch or 0, 3), "seconds": round(seconds, 1),
               "tokens": state.num_input_tokens_seen, **(logs or {})}
        with self.path.open("a", encoding="utf-8") as fh:  # the trainer logs once more after on_train_end
            fh.write(json.dumps(row) + "\n")
        self.last.update({k: v for k, v in row.items() if k in ("loss", "eval_loss")})
        self._show(state, seconds)

    def on_step_end(self, args, state, control, **kwargs):
        self._show(state, time.perf_counter() - self.start)

    def on_train_end(self, args, state, control, **kwargs):
        if self.live:
            self.live.stop()
            self.live = None

    def _show(self, state, seconds: float) -> None:
        if not state.is_world_process_zero:  # one live line per run, not one per process
            return
        rate = state.num_input_tokens_seen / seconds if seconds > 0 else 0
        parts = [f"train step {state.global_step}/{state.max_steps}", f"{rate:,.0f} tok/s"]
        parts += [f"{k} {v:.3f}" for k, v in self.last.items()]
        if self.live:
            self.live.update(" · ".join(parts))
        elif seconds >= self.next_print:  # a log file gets a line every half minute instead
            console.print(" · ".join(parts))
            self.next_print = seconds + 30


def plot_losses(metrics: Path, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    val = [(r["step"], r["eval_loss"]) for r in rows if "eval_loss" in r]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if train:
        ax.plot(*zip(*train), label="train loss")
    if val:
        ax.plot(*zip(*val), marker="o", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
