"""Near-duplicate records from MinHash signatures: LSH banding proposes pairs, the signatures verify them,
and each cluster of verified pairs keeps one record.

Banding alone is a coin flip near the threshold and lets through pairs far below
it that happen to share a band; checking every candidate's estimated Jaccard
against the threshold is what keeps precision high.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

EMPTY = 0xFFFFFFFF  # every position of the signature of a text with no words; never paired
_VERIFY_CHUNK = 1 << 14  # candidate pairs compared at once (each holds 2 * num_perm * 4 bytes)


def lsh_duplicates(sigs: np.ndarray, ids: list[str], lengths: list[int], threshold: float = 0.8,
                   bands: int | None = None, keep: str = "longest") -> list[tuple[str, str, float]]:
    """(dropped id, id of the kept record it duplicates, estimated Jaccard) for every record to drop.

    Records whose signatures agree on at least `threshold` of their positions are linked, and linked records
    form clusters (so a chain of near-copies is one cluster). Each cluster keeps one record: the one with the
    most `lengths` (ties: the earliest) for keep="longest", the earliest for keep="earliest".
    """
    n = len(ids)
    if len(lengths) != n or len(sigs) != n:
        raise ValueError(f"{len(sigs)} signatures, {n} ids and {len(lengths)} lengths: need one of each per record")
    if keep not in ("longest", "earliest"):
        raise ValueError(f"keep must be 'longest' or 'earliest', got {keep!r}")
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if n < 2:
        return []
    sigs = np.asarray(sigs)
    num_perm = sigs.shape[1]
    if bands is not None and not 0 < bands <= num_perm:
        raise ValueError(f"bands must be between 1 and num_perm ({num_perm}), got {bands}")
    b, r = optimal_bands(threshold, num_perm) if bands is None else (bands, num_perm // bands)

    live = np.flatnonzero(~(sigs == EMPTY).all(axis=1))
    live_sigs = sigs[live]
    keys = _band_keys(live_sigs, b, r)
    # Identical signatures (the same words, whatever the spacing or case) are linked directly and only one of
    # them goes through banding, so a thousand copies of a licence header cost a thousand links, not a million.
    first = _first_identical(live_sigs, keys, b * r)
    links = [np.stack([live[first], live])]
    reps = np.flatnonzero(first == np.arange(len(live)))
    lo, hi = _candidates(keys[:, reps])
    lo, hi = live[reps[lo]], live[reps[hi]]
    verified = _agreement(sigs, lo, hi) >= threshold
    links.append(np.stack([lo[verified], hi[verified]]))
    edges = np.concatenate(links, axis=1)
    edges = edges[:, edges[0] != edges[1]]
    return _keep_one_per_cluster(sigs, edges, ids, lengths, keep)


@lru_cache(maxsize=64)
def optimal_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) minimising false positive + false negative probability, as datasketch's MinHashLSH picks.

    The integrands are polynomials of degree at most num_perm, so Gauss-Legendre quadrature with
    num_perm/2 + 1 nodes integrates them exactly (datasketch uses scipy's adaptive quad to the same effect).
    """
    pairs = np.array([(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)], dtype=float)
    b, r = pairs[:, :1], pairs[:, 1:]
    nodes, weights = np.polynomial.legendre.leggauss(num_perm // 2 + 1)

    def integral(lo: float, hi: float, f) -> np.ndarray:
        s = lo + (hi - lo) * (nodes + 1) / 2
        return f(s[None, :]) @ (weights * (hi - lo) / 2)

    false_positive = integral(0.0, threshold, lambda s: 1 - (1 - s**r) ** b)
    false_negative = integral(threshold, 1.0, lambda s: (1 - s**r) ** b)
    best = int(np.argmin(0.5 * false_positive + 0.5 * false_negative))  # the first minimum, as datasketch keeps
    return int(pairs[best, 0]), int(pairs[best, 1])


def _band_keys(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(bands, len(sigs)): each band's values mixed into one uint64.

    Keys that collide by chance only add a candidate, which verification then rejects.
    """
    mult = np.arange(1, rows + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) | np.uint64(1)
    keys = np.empty((bands, len(sigs)), dtype=np.uint64)
    for band in range(bands):
        keys[band] = (sigs[:, band * rows : (band + 1) * rows].astype(np.uint64) * mult).sum(axis=1, dtype=np.uint64)
    return keys


def _first_identical(sigs: np.ndarray, keys: np.ndarray, covered: int) -> np.ndarray:
    """For each row, the first row with the same signature (itself if none is earlier).

    Rows are grouped by a key of the whole signature (the band keys, plus the `covered:` columns no band holds)
    and then compared in full, so a chance collision of keys never merges different signatures.
    """
    rest = sigs[:, covered:]
    mult = np.arange(1, len(keys) + rest.shape[1] + 1, dtype=np.uint64) * np.uint64(0xBF58476D1CE4E5B9) | np.uint64(1)
    whole = (keys * mult[: len(keys), None]).sum(axis=0, dtype=np.uint64)
    whole += (rest.astype(np.uint64) * mult[len(keys) :]).sum(axis=1, dtype=np.uint64)
    order = np.argsort(whole, kind="stable")
    whole = whole[order]
    run_start = np.r_[True, whole[1:] != whole[:-1]]
    first = order[np.maximum.accumulate(np.where(run_start, np.arange(len(order)), 0))]
    check = np.flatnonzero(~run_start)  # rows with an earlier row of the same key: the same signature?
    same = (sigs[order[check]] == sigs[first[check]]).all(axis=1)
    out = np.arange(len(sigs))
    out[order[check[same]]] = first[check[same]]
    return out


def _candidates(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (lo < hi) of rows with the same key in at least one band."""
    found = []
    for key in keys:
        order = np.argsort(key)
        key = key[order]
        shared = np.zeros(len(key), dtype=bool)  # members of buckets of two or more
        pair = key[1:] == key[:-1]
        shared[:-1] |= pair
        shared[1:] |= pair
        key, order = key[shared], order[shared]
        for d in range(1, len(key)):  # every pair in a bucket, d apart in sorted order: as many passes as the
            same = np.flatnonzero(key[d:] == key[:-d])  # largest bucket, each over bucketed rows only
            if not len(same):
                break
            found.append(np.stack([order[same], order[same + d]]))
    n = keys.shape[1]
    if not found:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    pairs = np.sort(np.concatenate(found, axis=1), axis=0)
    code = np.unique(pairs[0].astype(np.int64) * n + pairs[1])
    return code // n, code % n


def _agreement(sigs: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Share of positions where rows a and b agree: the signature's estimate of their Jaccard similarity."""
    out = np.empty(len(a))
    for i in range(0, len(a), _VERIFY_CHUNK):
        sa, sb = sigs[a[i : i + _VERIFY_CHUNK]], sigs[b[i : i + _VERIFY_CHUNK]]
        out[i : i + _VERIFY_CHUNK] = np.count_nonzero(sa == sb, axis=1) / sigs.shape[1]
    return out


def _keep_one_per_cluster(sigs: np.ndarray, edges: np.ndarray, ids: list[str], lengths: list[int],
                          keep: str) -> list[tuple[str, str, float]]:
    parent = list(range(len(ids)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in edges.T.tolist():
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    clusters: dict[int, list[int]] = {}
    for i in sorted(set(edges.ravel().tolist())):
        clusters.setdefault(root(i), []).append(i)
    dropped, kept = [], []
    for members in clusters.values():  # members are in index order, so max() and min() break ties by earliest
        keeper = max(members, key=lambda i: lengths[i]) if keep == "longest" else members[0]
        dropped += [i for i in members if i != keeper]
        kept += [keeper] * (len(members) - 1)
    order = np.argsort(dropped, kind="stable")
    dropped, kept = np.array(dropped, dtype=np.int64)[order], np.array(kept, dtype=np.int64)[order]
    scores = _agreement(sigs, dropped, kept)
    return [(ids[d], ids[k], float(s)) for d, k, s in zip(dropped.tolist(), kept.tolist(), scores.tolist())]
