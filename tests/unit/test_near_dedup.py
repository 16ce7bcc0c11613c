import multiprocessing
import random

import numpy as np
import pytest
from datasketch import MinHashLSH

from knowtune.curate import minhash
from knowtune.curate.minhash import EMPTY, jaccard, lsh_duplicates, optimal_bands, signatures, words

VOCAB = [a + b + c for a in "bdgklmnprst" for b in "aeiou" for c in ["", "n", "r", "sk", "lt"]]


def text(seed: int, n: int = 300) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(VOCAB) for _ in range(n))


def edited(original: str, target: float, seed: int) -> tuple[str, float]:
    """A copy with words replaced, one at a time, until its measured Jaccard with the original is nearest target."""
    rng = random.Random(seed)
    w = original.split()
    best = (original, 1.0)
    for i in range(len(w)):
        w[rng.randrange(len(w))] = f"new{seed}x{i}"
        j = jaccard(original, " ".join(w))
        if abs(j - target) < abs(best[1] - target):
            best = (" ".join(w), j)
        if j < target:
            return best
    return best


def dups(texts, ids, lengths=None, **kw):
    lengths = lengths or [len(t) for t in texts]
    return {d: (k, s) for d, k, s in lsh_duplicates(signatures(texts), ids, lengths, **kw)}


@pytest.mark.parametrize("bands", [None, 16, 32])
def test_planted_copies_are_found_by_their_measured_jaccard(bands):
    base = text(0)
    copies = {f"j{round(t * 100)}": edited(base, t, seed=i) for i, t in enumerate([0.95, 0.9, 0.6, 0.5])}
    for name, (_, j) in copies.items():
        assert abs(j - int(name[1:]) / 100) < 0.03, (name, j)
    ids = ["base", *copies, "other1", "other2"]
    texts = [base, *(c for c, _ in copies.values()), text(1), text(2)]
    found = dups(texts, ids, [1000] + [1] * 6, bands=bands)
    assert found["j95"][0] == "base" and found["j95"][1] >= 0.8
    # 9 x 13 banding (datasketch's choice for 0.8) makes a J=0.9 pair a candidate with probability 0.93 only;
    # more bands always do, and verification keeps it. Either way its estimate clears the threshold.
    sigs = signatures([base, copies["j90"][0]])
    assert np.mean(sigs[0] == sigs[1]) >= 0.8
    if bands:
        assert found["j90"][0] == "base"
    # With 32 x 4 the J=0.6 and 0.5 copies are candidates too: verification is what rejects them.
    assert set(found) <= {"j95", "j90"}


def test_case_spacing_and_punctuation_changes_are_exact_duplicates():
    base = text(3, 60)
    variants = [base.upper(), base.replace(" ", "  \n"), base.replace(" ", ", ", 10) + "!", f"({base})"]
    sigs = signatures([base, *variants])
    assert (sigs == sigs[0]).all()
    found = dups([base, *variants], ["a", "b", "c", "d", "e"], [5, 1, 1, 1, 1])
    assert found == {k: ("a", 1.0) for k in "bcde"}
    assert all(jaccard(base, v) == 1.0 for v in variants)


def test_a_cluster_keeps_exactly_one_record_and_the_rest_point_at_it():
    base = text(4)
    texts = [base] + [edited(base, t, seed=10 + i)[0] for i, t in enumerate([0.98, 0.97, 0.96])]
    ids = ["a", "b", "c", "d"]
    lengths = [100, 300, 200, 300]
    longest = dups(texts, ids, lengths)
    assert set(longest) == {"a", "c", "d"} and {k for k, _ in longest.values()} == {"b"}  # ties: the earliest
    assert all(s >= 0.8 for _, s in longest.values())
    earliest = dups(texts, ids, lengths, keep="earliest")
    assert set(earliest) == {"b", "c", "d"} and {k for k, _ in earliest.values()} == {"a"}


def test_unrelated_texts_are_never_paired():
    texts = [text(100 + i, 200) for i in range(300)]
    assert lsh_duplicates(signatures(texts), [str(i) for i in range(300)], [1] * 300, bands=32) == []


@pytest.mark.parametrize("words_per_text", [12, 40, 300])
def test_estimates_are_unbiased_over_planted_pairs(words_per_text):
    # Short texts leave most bins empty after the first round; the later rounds must not bias the estimate.
    pairs = [(text(200 + i, words_per_text), 0.3 + 0.7 * (i % 10) / 10) for i in range(40)]
    pairs = [(a, *edited(a, target, seed=i)) for i, (a, target) in enumerate(pairs)]
    sigs = signatures([t for a, b, _ in pairs for t in (a, b)])
    est = np.mean(sigs[0::2] == sigs[1::2], axis=1)
    exact = np.array([j for _, _, j in pairs])
    assert abs(np.mean(est - exact)) < 0.015
    assert np.sqrt(np.mean((est - exact) ** 2)) < 0.05


def test_signatures_do_not_depend_on_process_or_batch(monkeypatch):
    texts = [text(300 + i, 20 + 37 * i) for i in range(12)] + ["", "two words", "Ünïcödé — text, with ß and 日本語"]
    whole = signatures(texts)
    with multiprocessing.get_context("spawn").Pool(1) as pool:  # a fresh interpreter: its own hash() salt
        assert (pool.apply(signatures, (texts,)) == whole).all()
    for size in (1, 4, 7):
        parts = [signatures(texts[i : i + size]) for i in range(0, len(texts), size)]
        assert (np.concatenate(parts) == whole).all()
    monkeypatch.setattr(minhash, "_GROUP_BYTES", 500)  # many internal groups in one call
    assert (signatures(texts) == whole).all()
    assert not (signatures(texts, seed=2) == whole).all()


def test_short_and_empty_texts():
    texts = ["", "  ...  ", "hello world", "Hello, WORLD!", "hello there", "one two three four five six"]
    sigs = signatures(texts)
    assert (sigs[0] == EMPTY).all() and (sigs[1] == EMPTY).all()
    assert not (sigs[2:] == EMPTY).any()
    assert (sigs[2] == sigs[3]).all() and not (sigs[2] == sigs[4]).any()
    found = dups(texts, list("abcdef"), [1] * 6)
    assert found == {"d": ("c", 1.0)}  # the two empty texts are not duplicates of each other
    assert jaccard("", "") == 0.0 and jaccard("", "a b") == 0.0
    assert jaccard("hello world", "HELLO world") == 1.0 and jaccard("hello", "hello world") == 0.0
    assert lsh_duplicates(np.zeros((0, 0)), [], []) == []


def test_fast_ascii_words_match_the_regular_expression():
    samples = ["".join(map(chr, range(128))) * 2, "snake_case CamelCase x2y3 \t\n tabs", "a-b a.b a'b",
               "café naïve — “quoted” Straße 日本語"]
    for s in samples:
        assert minhash._normalised(s).split() == [w.encode() for w in words(s)]
    # An ASCII text and the same words with non-ASCII punctuation take different paths to the same signature.
    assert (signatures(["one - two 'three' four five six"]) == signatures(["one — two ‘three’ four five six"])).all()


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.8, 0.9, 0.95])
@pytest.mark.parametrize("num_perm", [64, 128])
def test_bands_and_rows_match_datasketch(threshold, num_perm):
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    assert optimal_bands(threshold, num_perm) == (lsh.b, lsh.r)


def test_bad_arguments_are_one_line_errors():
    sigs = signatures(["a b c", "d e f"])
    with pytest.raises(ValueError, match="one of each"):
        lsh_duplicates(sigs, ["a"], [1, 2])
    with pytest.raises(ValueError, match="keep"):
        lsh_duplicates(sigs, ["a", "b"], [1, 2], keep="shortest")
    with pytest.raises(ValueError, match="bands"):
        lsh_duplicates(sigs, ["a", "b"], [1, 2], bands=500)
