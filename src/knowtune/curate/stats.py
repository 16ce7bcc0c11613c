"""Numbers and plots that describe a dataset."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..records import Example


def summary(values: list[int]) -> dict[str, float]:
    if not values:
        return {"count": 0}
    s = sorted(values)
    pick = lambda q: s[min(len(s) - 1, int(q * len(s)))]  # noqa: E731
    return {
        "count": len(s), "min": s[0], "median": pick(0.5), "p95": pick(0.95), "max": s[-1],
        "mean": round(sum(s) / len(s), 1), "total": sum(s),
    }


def dataset_stats(examples: list[Example], lengths: dict[str, int]) -> dict:
    splits = sorted({e.split for e in examples})
    return {
        "examples": len(examples),
        "by_split": {s: dict(Counter(e.kind for e in examples if e.split == s)) for s in splits},
        "documents_by_split": {s: len({e.document_id for e in examples if e.split == s}) for s in splits},
        "tokens_by_kind": {
            k: summary([lengths[e.id] for e in examples if e.kind == k]) for k in sorted({e.kind for e in examples})
        },
        "train_tokens": sum(lengths[e.id] for e in examples if e.split == "train"),
    }


def plot_lengths(before: dict[str, list[int]], after: dict[str, list[int]], path: Path, limit: int) -> None:
    """One panel per measure (instruction, output, combined tokens), before and after curation overlaid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(before), figsize=(4 * len(before), 3.3))
    for ax, measure in zip(axes, before):
        values = before[measure] + after.get(measure, [])
        bins = 40 if not values else min(40, max(values) - min(values) + 1)
        ax.hist(before[measure], bins=bins, alpha=0.5, label="before")
        ax.hist(after.get(measure, []), bins=bins, alpha=0.7, label="after")
        if measure == "combined":
            ax.axvline(limit, color="k", linestyle="--", linewidth=1, label="max_tokens")
        ax.set_title(f"{measure} tokens per example")
        ax.set_xlabel("tokens")
        ax.legend()
    axes[0].set_ylabel("examples")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
