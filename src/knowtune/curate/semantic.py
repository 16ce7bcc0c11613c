"""Semantic near-duplicate removal: a record whose embedding is at `threshold`
cosine or more to a record already kept is dropped.

The embeddings come from `embed.embed`; this module only decides, so the
stage can cache vectors by text hash and compute them anywhere. On a CPU,
embedding is nearly all the cost: `screen.screen` first leaves out the texts
that have no near-duplicate by a wide margin, and only the rest are embedded.
"""

from __future__ import annotations

import faiss
import numpy as np

from .embed import embed  # noqa: F401  (the stage imports all three from here)
from .screen import exact_cosines, screen, screen_scores  # noqa: F401

# Records are decided a block at a time: the block is searched against the
# records kept before it (FAISS), and against its own earlier members (one
# small matrix), so memory stays bounded even when thousands of records are
# near-copies of each other, where an all-pairs range search would return
# millions of pairs.
BLOCK = 1024
# Kept records FAISS proposes for each record; their cosines are then computed exactly.
CANDIDATES = 8


def keep_order(lengths: list[int], keep: str) -> list[int]:
    if keep == "longest":
        return sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    if keep == "earliest":
        return list(range(len(lengths)))
    raise ValueError(f"keep must be 'longest' or 'earliest', not {keep!r}")


def semantic_duplicates(emb: np.ndarray, ids: list[str], lengths: list[int], threshold: float = 0.95,
                        keep: str = "longest", best: list[float] | None = None) -> list[tuple[str, str, float]]:
    """(dropped id, id of the kept record it duplicates, cosine) for every record to drop.

    Records are visited in keep order ("longest": most `lengths` first, ties by
    index; "earliest": by index); one whose cosine to a record already kept is
    at least `threshold` is dropped and points at the most similar kept one.
    So each cluster keeps exactly one record, where keeping a record only if
    its nearest neighbour is below the threshold would drop both of a pair.
    `emb` rows must be L2-normalised (as `embed` returns them). `best`, when
    given, receives each visited record's highest cosine to a kept record.

    Cosines that decide are float64 dot products of the float32 vectors:
    FAISS only proposes candidates, since its float32 scores depend on its BLAS
    blocking and thread count, and a pair at the threshold would be decided by
    how the machine was loaded.
    """
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    if emb.ndim != 2 or not len(emb) == len(ids) == len(lengths):
        raise ValueError(f"emb {emb.shape}, {len(ids)} ids and {len(lengths)} lengths do not match")
    order = np.array(keep_order(lengths, keep), dtype=np.int64)
    kept = faiss.IndexFlatIP(emb.shape[1])
    kept_rows: list[int] = []  # record index of each vector in `kept`, in insertion order
    dropped: list[tuple[str, str, float]] = []
    for start in range(0, len(order), BLOCK):
        block = order[start:start + BLOCK]
        x = emb[block]
        if kept.ntotal:
            _, at = kept.search(x, min(CANDIDATES, kept.ntotal))
            prior = exact_cosines(x, emb[kept_rows], at)
        else:
            at, prior = np.zeros((len(block), 1), np.int64), np.full((len(block), 1), -np.inf)
        inner = x.astype(np.float64) @ x.astype(np.float64).T
        kept_here = np.zeros(len(block), dtype=bool)
        for a, row in enumerate(block):
            j = int(np.argmax(prior[a]))
            score, to = float(prior[a, j]), kept_rows[at[a, j]] if kept.ntotal else -1
            earlier = np.flatnonzero(kept_here[:a])
            if len(earlier):
                b = earlier[np.argmax(inner[a, earlier])]
                if inner[a, b] > score:
                    score, to = float(inner[a, b]), int(block[b])
            if best is not None:
                best.append(score)
            if score >= threshold:
                dropped.append((ids[row], ids[to], score))
            else:
                kept_here[a] = True
        kept.add(x[kept_here])
        kept_rows.extend(int(r) for r in block[kept_here])
    return dropped
