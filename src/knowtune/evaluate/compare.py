"""Which way of answering wins, said honestly: paired bootstrap intervals over the same questions.

Every question is answered by every way (base, base with retrieval, tuned, tuned with retrieval), so the
difference of two ways is measured question by question; resampling the questions gives a 95% interval for
it. When the interval holds zero the verdict is "no clear winner", whatever the means say, and the number of
questions it rests on is printed with it.
"""

from __future__ import annotations

import itertools

import numpy as np

RESAMPLES = 2000


def paired_interval(a: np.ndarray, b: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """(mean of a - b, 2.5th and 97.5th percentile of that mean over resampled questions)."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if len(diff) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(RESAMPLES, len(diff)))].mean(axis=1)
    return float(diff.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def compare(scores: dict[str, dict[str, float]], seed: int = 0) -> dict:
    """`scores`: way -> question id -> score. Every pair of ways with its interval, and the verdict."""
    ways = list(scores)
    shared = sorted(set.intersection(*(set(s) for s in scores.values()))) if scores else []
    pairs = []
    for a, b in itertools.combinations(ways, 2):
        mean, low, high = paired_interval(np.array([scores[a][q] for q in shared]),
                                          np.array([scores[b][q] for q in shared]), seed)
        better = a if low > 0 else b if high < 0 else None
        pairs.append({"a": a, "b": b, "difference": round(mean, 4), "low": round(low, 4), "high": round(high, 4),
                      "better": better})
    # a winner is better than every other way with an interval clear of zero
    winner = next((w for w in ways if all(p["better"] == w for p in pairs if w in (p["a"], p["b"]))), None)
    verdict = f"{winner} is best" if winner else "no clear winner"
    return {"questions": len(shared), "pairs": pairs, "winner": winner,
            "verdict": f"{verdict} ({len(shared)} questions, 95% paired bootstrap intervals)"}
