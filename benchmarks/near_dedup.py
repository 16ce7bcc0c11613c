"""Near-duplicate detection: knowtune's MinHash LSH against datasketch's MinHashLSH, on one synthetic corpus.

Chunks of 150-400 words are drawn from a Zipf-distributed vocabulary; a few
thousand planted groups (pairs at exact Jaccard spread over 0.5-1.0, and
clusters of 3-4 close copies) are made by editing a chunk word by word until
`jaccard` measures the target, with case, spacing and punctuation changes on
top. Quality counts only pairs outside 0.75-0.85, where any LSH at threshold
0.8 is a coin flip: a pair at 0.85 or more should be found (same cluster), one
below 0.75 should not. The baseline is datasketch used well: one MinHash per
record (MinHash.generator, which copies one initialised MinHash) filled with
update_batch over the encoded shingles (from the same fast tokeniser),
an insertion session, a query per record, each candidate verified with
MinHash.jaccard, then the same clustering and keep rule. Runs alternate, so
background load hits both alike.

    .venv/bin/python benchmarks/near_dedup.py [--n 100000] [--repeats 3] [--processes 2] [--bands 16]
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from itertools import combinations

import numpy as np
from datasketch import MinHash, MinHashLSH

from knowtune.curate.minhash import jaccard, lsh_duplicates, optimal_bands, shingles, signatures

SPEED_GOAL, QUALITY_GOAL, BAND = 3.0, 0.95, (0.75, 0.85)
STEPS = [(0.85, 0.9), (0.9, 0.95), (0.95, 1.01)]  # recall is also shown per step of exact Jaccard
THRESHOLD, NUM_PERM, SHINGLE = 0.8, 128, 5
SYLLABLES = "ka lo mi ne ru ta po se vi da gor lin tas ber mon qu ax el ou ri sh an te".split()


def corpus(n: int, seed: int = 0) -> tuple[list[str], dict[tuple[int, int], float]]:
    """n chunks, and the exact Jaccard of every pair inside a planted group (indices into the chunks)."""
    rng = np.random.default_rng(seed)
    vocab = sorted({"".join(rng.choice(SYLLABLES, rng.integers(1, 4))) for _ in range(6000)})[:4000]
    rng.shuffle(vocab)
    p = 1 / np.arange(1, len(vocab) + 1) ** 1.05
    p /= p.sum()
    # Each word in four forms (plain, capitalised after a full stop, ending a sentence, both), picked by position.
    forms = np.array(vocab + [w.capitalize() for w in vocab] + [w + "." for w in vocab]
                     + [w.capitalize() + "." for w in vocab], dtype=object)
    lengths = rng.integers(150, 401, n)
    word = rng.choice(len(vocab), lengths.sum(), p=p)
    ends = rng.random(len(word)) < 1 / 12
    starts = np.r_[True, ends[:-1]]
    tokens = forms[word + len(vocab) * (starts + 2 * ends)]
    texts = [" ".join(t.tolist()) for t in np.split(tokens, np.cumsum(lengths)[:-1])]
    groups = [[i] for i in range(n // 33)]
    copies: list[str] = []
    for g, group in enumerate(groups):
        pair = g % 5 != 0  # four in five are pairs over 0.5-1.0, one in five a cluster of close copies
        for _ in range(1 if pair else int(rng.integers(2, 4))):
            target = rng.uniform(0.5, 1.0) if pair else rng.uniform(0.92, 1.0)
            copies.append(reformat(edit(texts[group[0]], target, vocab, p, rng), rng))
            group.append(n - len(copies))  # copies replace the last chunks, then everything is shuffled
    texts[n - len(copies):] = copies[::-1]
    order = rng.permutation(n)
    texts = [texts[i] for i in order]
    where = np.argsort(order)
    truth = {}
    for group in groups:
        for a, b in combinations(sorted(where[group].tolist()), 2):
            truth[(a, b)] = jaccard(texts[a], texts[b], SHINGLE)
    return texts, truth


def edit(text: str, target: float, vocab: list[str], p: np.ndarray, rng: np.random.Generator) -> str:
    """A copy of text edited (replace, insert, delete words) until its Jaccard with text is closest to target."""
    words = text.split(" ")
    new = rng.choice(len(vocab), len(words), p=p)
    ops = [(int(rng.integers(3)), rng.random(), vocab[w]) for w in new]
    original = shingles(text, SHINGLE)

    def apply(m: int) -> list[str]:
        out = list(words)
        for op, at, new in ops[:m]:
            i = int(at * len(out))
            if op == 0:
                out[i] = new
            elif op == 1:
                out.insert(i, new)
            elif len(out) > SHINGLE:
                del out[i]
        return out

    def similarity(m: int) -> float:
        s = shingles(" ".join(apply(m)), SHINGLE)
        return len(s & original) / len(s | original)

    lo, hi = 0, len(ops)  # similarity falls (not strictly) with the number of edits: bisect for the target
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if similarity(mid) >= target else (lo, mid)
    best = min((lo, hi), key=lambda m: abs(similarity(m) - target))
    return " ".join(apply(best))


def reformat(text: str, rng: np.random.Generator) -> str:
    """Changes normalisation removes: case, spacing, punctuation."""
    if rng.random() < 0.5:
        text = text.lower()
    if rng.random() < 0.5:
        text = text.replace(". ", ".\n\n")
    if rng.random() < 0.5:
        text = re.sub(r"(\w) (\w)", r"\1, \2", text, count=int(rng.integers(1, 20)))
    return text


def run_knowtune(texts, ids, lengths, bands=None):
    sigs = signatures(texts, shingle=SHINGLE, num_perm=NUM_PERM)
    return sigs, lsh_duplicates(sigs, ids, lengths, THRESHOLD, bands, "longest")


def run_knowtune_pool(pool, texts, ids, lengths, batch=2000):
    parts = pool.map(signatures, [texts[i : i + batch] for i in range(0, len(texts), batch)])
    return lsh_duplicates(np.concatenate(list(parts)), ids, lengths, THRESHOLD, None, "longest")


_ASCII = bytes(c + 32 if 65 <= c <= 90 else c if 48 <= c <= 57 or 97 <= c <= 122 else 32 for c in range(256))


def run_datasketch(texts, ids, lengths, params=None, minhashes=None):
    if minhashes is None:
        # MinHash.generator copies one initialised MinHash per record (1.5x faster than MinHash() each time) and
        # fills it with update_batch; the words are knowtune's, by the same fast path (the corpus is ASCII).
        words = (t.encode().translate(_ASCII).split() for t in texts)
        shingled = ([b" ".join(w[i : i + SHINGLE]) for i in range(max(len(w) - SHINGLE + 1, 1))] for w in words)
        minhashes = list(MinHash.generator(shingled, num_perm=NUM_PERM))
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM, params=params)
    with lsh.insertion_session() as session:
        for i, m in enumerate(minhashes):
            session.insert(i, m)
    parent = list(range(len(texts)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, m in enumerate(minhashes):
        for j in lsh.query(m):
            if j > i and m.jaccard(minhashes[j]) >= THRESHOLD:
                parent[max(root(i), root(j))] = min(root(i), root(j))
    clusters: dict[int, list[int]] = {}
    for i in range(len(texts)):
        clusters.setdefault(root(i), []).append(i)
    dups = []
    for members in clusters.values():
        keeper = max(members, key=lambda i: lengths[i])
        dups += [(ids[i], ids[keeper], minhashes[i].jaccard(minhashes[keeper])) for i in members if i != keeper]
    return minhashes, dups


def found_pairs(dups, index) -> set[tuple[int, int]]:
    clusters: dict[str, list[int]] = {}
    for dropped, kept, _ in dups:
        clusters.setdefault(kept, [index[kept]]).append(index[dropped])
    return {tuple(sorted(p)) for members in clusters.values() for p in combinations(members, 2)}


def score(found, truth, texts) -> str:
    """Precision and recall outside the band, and recall per 0.05 of exact Jaccard above it."""
    exact = {p: truth[p] if p in truth else jaccard(texts[p[0]], texts[p[1]], SHINGLE) for p in found}
    tp = sum(j >= BAND[1] for j in exact.values())
    fp = sum(j < BAND[0] for j in exact.values())
    precision, recall = tp / max(tp + fp, 1), tp / max(sum(j >= BAND[1] for j in truth.values()), 1)
    per = [np.mean([p in found for p, j in truth.items() if lo <= j < hi]) for lo, hi in STEPS]
    verdict = "meets" if min(precision, recall) >= QUALITY_GOAL else "BELOW"
    return (f"precision {precision:.4f}  recall {recall:.4f} ({verdict} goal {QUALITY_GOAL}); recall at J "
            + ", ".join(f"{lo:.2f}-{min(hi, 1):.2f} {x:.3f}" for (lo, hi), x in zip(STEPS, per)))


def spread(rates: list[float]) -> str:
    return f"{statistics.median(rates):8.0f} docs/s (runs {min(rates):.0f}-{max(rates):.0f})"


def timings(texts, ids, lengths, repeats: int, processes: int):
    run_knowtune(texts[:2000], ids[:2000], lengths[:2000])  # warm-up: imports, cached constants
    k_rates, d_rates = [], []
    for _ in range(repeats):  # alternating, so background load hits both alike
        t = time.perf_counter()
        sigs, k_dups = run_knowtune(texts, ids, lengths)
        k_rates.append(len(texts) / (time.perf_counter() - t))
        t = time.perf_counter()
        minhashes, d_dups = run_datasketch(texts, ids, lengths)
        d_rates.append(len(texts) / (time.perf_counter() - t))
    print(f"knowtune signatures + lsh_duplicates, 1 process: {spread(k_rates)}")
    print(f"datasketch MinHash.update_batch + MinHashLSH:    {spread(d_rates)}")
    if processes > 1:
        with ProcessPoolExecutor(processes) as pool:
            list(pool.map(signatures, [texts[:100]] * processes))  # warm-up: start and import
            p_rates = []
            for _ in range(repeats):
                t = time.perf_counter()
                p_dups = run_knowtune_pool(pool, texts, ids, lengths)
                p_rates.append(len(texts) / (time.perf_counter() - t))
        assert p_dups == k_dups, "signatures from worker processes gave different duplicates"
        print(f"knowtune, signatures on {processes} processes:          {spread(p_rates)}  "
              f"{statistics.median(p_rates) / statistics.median(d_rates):.2f}x datasketch")
    return sigs, k_dups, minhashes, d_dups, k_rates, d_rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="chunks in the corpus")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each method")
    parser.add_argument("--processes", type=int, default=2, help="also time signatures on this many processes")
    parser.add_argument("--bands", type=int, default=16, help="also score this band count (verified, so more "
                        "bands cost little precision and buy recall at 0.85-0.9)")
    args = parser.parse_args()
    t0 = time.perf_counter()
    texts, truth = corpus(args.n)
    ids, lengths = [f"c{i:06d}" for i in range(len(texts))], [t.count(" ") + 1 for t in texts]
    index = {d: i for i, d in enumerate(ids)}
    js = np.array(list(truth.values()))
    print(f"corpus: {len(texts)} chunks, {np.mean(lengths):.0f} words each on average, {len(truth)} planted pairs "
          f"(exact Jaccard per 0.1 from 0.5: {np.histogram(js, bins=[0.5, .6, .7, .8, .9, 1.0001])[0].tolist()}, "
          f"{(js < 0.5).sum()} below), built in {time.perf_counter() - t0:.0f} s")
    b, r = optimal_bands(THRESHOLD, NUM_PERM)
    print(f"threshold {THRESHOLD}, num_perm {NUM_PERM}, shingle {SHINGLE}; bands x rows chosen: {b} x {r}")
    sigs, k_dups, minhashes, d_dups, k_rates, d_rates = timings(texts, ids, lengths, args.repeats, args.processes)

    for name, est in (("knowtune", [np.mean(sigs[a] == sigs[b]) for a, b in truth]),
                      ("datasketch", [minhashes[a].jaccard(minhashes[b]) for a, b in truth])):
        err = np.array(est) - js
        print(f"{name:10s} estimate - exact Jaccard over planted pairs: mean {err.mean():+.4f}, "
              f"RMSE {np.sqrt((err ** 2).mean()):.4f}")
    k_found, d_found = found_pairs(k_dups, index), found_pairs(d_dups, index)
    print(f"knowtune   bands {b} x {r}: {score(k_found, truth, texts)}")
    print(f"datasketch bands {b} x {r}: {score(d_found, truth, texts)}")
    if args.bands:
        rows = NUM_PERM // args.bands
        found = found_pairs(lsh_duplicates(sigs, ids, lengths, THRESHOLD, args.bands), index)
        print(f"knowtune   bands {args.bands} x {rows}: {score(found, truth, texts)}")
        found = found_pairs(run_datasketch(texts, ids, lengths, (args.bands, rows), minhashes)[1], index)
        print(f"datasketch bands {args.bands} x {rows}: {score(found, truth, texts)}")

    # Same decisions, for records outside planted groups that hold a pair inside the coin-flip band.
    unsure = {i for p, j in truth.items() if BAND[0] <= j < BAND[1] for i in p}
    k_drop, d_drop = {index[d] for d, _, _ in k_dups}, {index[d] for d, _, _ in d_dups}
    sure = [i for i in range(len(texts)) if i not in unsure]
    same = sum((i in k_drop) == (i in d_drop) for i in sure)
    print(f"decisions: {len(k_drop)} dropped by knowtune, {len(d_drop)} by datasketch; same keep/drop outcome for "
          f"{same / len(sure):.4%} of the {len(sure)} records outside the {BAND[0]}-{BAND[1]} band")
    outside = {p for p in k_found | d_found if not BAND[0] <= truth.get(p, 0.0) < BAND[1]}
    differ = sorted(truth.get(p, 0.0) for p in (k_found ^ d_found) & outside)
    between = f" (exact Jaccard {differ[0]:.3f}-{differ[-1]:.3f})" if differ else ""
    print(f"pairs outside the band: knowtune {len(k_found & outside)}, datasketch {len(d_found & outside)}, both "
          f"{len(k_found & d_found & outside)}, only knowtune {len((k_found - d_found) & outside)}, only datasketch "
          f"{len((d_found - k_found) & outside)}{between}")
    ratio = statistics.median(k_rates) / statistics.median(d_rates)
    print(f"goal {SPEED_GOAL:.1f}x on 1 process: {'meets' if ratio >= SPEED_GOAL else 'BELOW'} "
          f"(ratio per run {min(k_rates) / max(d_rates):.2f}x to {max(k_rates) / min(d_rates):.2f}x at the extremes)")
    print(f"vs datasketch update_batch: {ratio:.2f}x")


if __name__ == "__main__":
    main()
