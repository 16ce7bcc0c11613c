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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
    for ax, (title, data) in zip(axes, (("before curation", before), ("after curation", after))):
        for kind, values in sorted(data.items()):
            if values:
                ax.hist(values, bins=40, alpha=0.6, label=kind)
        ax.axvline(limit, color="k", linestyle="--", linewidth=1)
        ax.set_title(f"tokens per example, {title}")
        ax.set_xlabel("tokens")
        ax.legend()
    axes[0].set_ylabel("examples")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
