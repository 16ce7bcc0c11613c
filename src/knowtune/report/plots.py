"""The plots the report draws from the stages' numbers: training curves, the four ways per question set,
and the scores measured during training. Each returns the file it wrote, or None when there is nothing to
draw."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .blocks import label, metric_label

RESAMPLES = 2000  # as evaluate/compare.py: 95% intervals from 2000 resamples of the questions


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    fig.clf()
    _pyplot().close(fig)
    return path


def mean_interval(scores: list[float], seed: int = 0) -> tuple[float, float, float]:
    """The mean of one way's per-question scores and its 95% bootstrap interval over the questions."""
    x = np.asarray(scores, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(RESAMPLES, len(x)))].mean(axis=1)
    return float(x.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def training_curves(rows: list[dict], path: Path) -> Path | None:
    """Loss and validation loss, learning rate and throughput, each against the optimiser step."""
    train = [r for r in rows if "loss" in r and "step" in r]
    evals = [r for r in rows if "eval_loss" in r and "step" in r]
    lrs = [r for r in rows if "learning_rate" in r and "step" in r]
    timed = [r for r in train if "tokens" in r and "seconds" in r]
    speed = [(b["step"], (b["tokens"] - a["tokens"]) / (b["seconds"] - a["seconds"]))
             for a, b in zip(timed, timed[1:]) if b["seconds"] > a["seconds"]]
    panels = [p for p, keep in (("loss", train or evals), ("lr", lrs), ("speed", speed)) if keep]
    if not panels:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        if panel == "loss":
            if train:
                ax.plot([r["step"] for r in train], [r["loss"] for r in train], label="train loss")
            if evals:
                ax.plot([r["step"] for r in evals], [r["eval_loss"] for r in evals], marker="o",
                        label="validation loss")
            ax.set_ylabel("loss (nats per token)")
            ax.legend(fontsize=8)
        elif panel == "lr":
            ax.plot([r["step"] for r in lrs], [r["learning_rate"] for r in lrs], color="tab:green")
            ax.set_ylabel("learning rate")
        else:
            ax.plot([s for s, _ in speed], [v for _, v in speed], color="tab:purple", marker=".")
            ax.set_ylabel("tokens/s (wall clock, with evaluation)")
            ax.set_ylim(bottom=0)
        ax.set_xlabel("step")
    return _save(fig, path)


def four_ways(bars: dict[str, dict[str, tuple[float, float | None, float | None]]], path: Path) -> Path | None:
    """Grouped bars: one group per question set, one bar per way, error bars where an interval is known.

    `bars`: set name -> way -> (score, low, high); the score is F1, or exact match for the general set."""
    if not bars:
        return None
    ways = [w for w in ("base", "base_rag", "tuned", "tuned_rag") if any(w in b for b in bars.values())]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(bars) + 2), 3.6))
    width = 0.8 / max(1, len(ways))
    colours = {"base": "#9aa7b8", "base_rag": "#4f6d8f", "tuned": "#f2a65a", "tuned_rag": "#c7522a"}
    for i, way in enumerate(ways):
        xs, ys, lo, hi = [], [], [], []
        for j, by_way in enumerate(bars.values()):
            if way in by_way:
                score, low, high = by_way[way]
                xs.append(j + (i - (len(ways) - 1) / 2) * width)
                ys.append(score)
                lo.append(score - low if low is not None else 0.0)
                hi.append(high - score if high is not None else 0.0)
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=label(way), color=colours.get(way))
    ax.set_xticks(range(len(bars)))
    ax.set_xticklabels([f"{name}\n({metric_label('exact_match' if name == 'general' else 'f1')})" for name in bars])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score")
    ax.legend(fontsize=8, ncol=len(ways), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    return _save(fig, path)


def during_training(rows: list[dict], path: Path) -> Path | None:
    """Knowledge F1 and general exact match at each evaluation during training: where to stop."""
    rows = [r for r in rows if "step" in r]
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    steps = [r["step"] for r in rows]
    for key, name, colour in (("knowledge_f1", "knowledge F1", "tab:orange"),
                              ("general_exact_match", "general exact match", "tab:blue")):
        points = [(s, r[key]) for s, r in zip(steps, rows) if r.get(key) is not None]
        if points:
            ax.plot([s for s, _ in points], [v for _, v in points], marker="o", label=name, color=colour)
    scored = [r for r in rows if r.get("knowledge_f1") is not None]
    if scored:  # the step a user would stop at for knowledge
        best = max(scored, key=lambda r: (r["knowledge_f1"], -r["step"]))
        ax.axvline(best["step"], color="grey", linestyle="--", linewidth=1,
                   label=f"best knowledge F1 (step {best['step']})")
    ax.set_xlabel("step")
    ax.set_ylabel("score")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    return _save(fig, path)
