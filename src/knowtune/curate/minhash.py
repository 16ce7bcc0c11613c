"""MinHash signatures of word shingles, and the exact Jaccard similarity they estimate.

Written here rather than taken from datasketch because datasketch builds one
Python object per record and hashes each shingle with SHA-1 in Python, then
applies num_perm permutations to it; at a few hundred thousand chunks that is
most of curation's time. Here a whole batch is one set of numpy operations over
its bytes, and a signature costs about one hash per shingle rather than
num_perm: each shingle lands in one of num_perm bins (one permutation hashing,
Li, Owen & Zhang 2012), and bins a text leaves empty are filled by further
rounds of the same (fast similarity sketching, Dahlgaard, Knudsen & Thorup
2017). Each bin agrees between two texts with probability equal to their
Jaccard similarity, so signatures estimate it without bias, as datasketch's do.
benchmarks/near_dedup.py measures speed and agreement against datasketch.

Everything is integer arithmetic on uint64 from constants derived from the seed
(no Python hash(), which is salted per process), and each text's signature
depends on that text alone: rows are the same in any process, on any machine,
in any batch, so they can be cached by text hash and computed in parallel.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from .lsh import EMPTY, lsh_duplicates, optimal_bands  # noqa: F401  (the curate stage imports them from here)

# Signatures from another version of this code do not compare with these: make it part of any cache key.
VERSION = 1

_WORD = re.compile(r"[^\W_]+")  # runs of letters and digits
_NOT_WORD = re.compile(r"[\W_]+")
# The same words for ASCII text as _WORD finds after lower(), by one C-level byte translation (about 30x faster).
_ASCII = bytes(c + 32 if 65 <= c <= 90 else c if 48 <= c <= 57 or 97 <= c <= 122 else 32 for c in range(256))
# Texts are hashed in groups of about this many bytes: memory stays bounded, and the temporaries stay small
# enough for the allocator to reuse (fresh pages cost more than the arithmetic; 512 KB measured fastest).
_GROUP_BYTES = 1 << 19
_MASK64 = (1 << 64) - 1
_U = np.uint64


def words(text: str) -> list[str]:
    """The normalised words of a text: lower case, runs of letters and digits."""
    return _WORD.findall(text.lower())


def shingles(text: str, shingle: int = 5) -> set[tuple[str, ...]]:
    """Word n-grams; a text shorter than `shingle` words is one shingle, an empty one has none."""
    w = words(text)
    return {tuple(w[i : i + shingle]) for i in range(max(len(w) - shingle + 1, 1))} if w else set()


def jaccard(a: str, b: str, shingle: int = 5) -> float:
    """Exact Jaccard similarity of two texts' shingle sets (0.0 if either has no words)."""
    sa, sb = shingles(a, shingle), shingles(b, shingle)
    return len(sa & sb) / len(sa | sb) if sa and sb else 0.0


def signatures(texts: list[str], shingle: int = 5, num_perm: int = 128, seed: int = 1) -> np.ndarray:
    """One MinHash signature (num_perm uint32 values) per text, shape (len(texts), num_perm).

    A text with no words gets EMPTY in every position, which lsh_duplicates never pairs.
    """
    if shingle < 1 or num_perm < 1:
        raise ValueError(f"shingle and num_perm must be positive, got shingle={shingle}, num_perm={num_perm}")
    out = np.full((len(texts), num_perm), EMPTY, dtype=np.uint32)
    start, size = 0, 0
    for i, text in enumerate(texts):
        size += len(text) + 1
        if size >= _GROUP_BYTES or i == len(texts) - 1:
            out[start : i + 1] = _group(texts[start : i + 1], shingle, num_perm, seed)
            start, size = i + 1, 0
    return out


def _normalised(text: str) -> bytes:
    """UTF-8 bytes of the text's words, separated by spaces (runs of spaces allowed)."""
    if text.isascii():
        return text.encode("ascii").translate(_ASCII)
    return _NOT_WORD.sub(" ", text.lower()).encode("utf-8")


def _group(texts: list[str], shingle: int, num_perm: int, seed: int) -> np.ndarray:
    h, doc = _word_hashes(texts, seed)
    x, xdoc = _shingle_hashes(h, doc, len(texts), shingle, seed)
    return _sketch(x, xdoc, len(texts), num_perm, seed)


def _word_hashes(texts: list[str], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A hash per word and the index of its text, in text order.

    A word's hash is the polynomial sum(byte_j * Q**(j - start)) mod 2**64, computed for every word at once from
    one running sum over the bytes; it depends on the word's bytes only, not on where it sits.
    """
    parts = [_normalised(t) for t in texts]
    buf = np.frombuffer(b"\x00".join(parts), dtype=np.uint8)  # NUL and space are the only non-word bytes left
    inside = np.zeros(len(buf) + 2, dtype=bool)
    inside[1:-1] = buf > 32
    edges = np.flatnonzero(inside[1:] != inside[:-1])
    starts, ends = edges[0::2], edges[1::2]
    h = np.empty(len(starts), dtype=np.uint64)
    first = 0
    while first < len(starts):  # one pass, unless a text is longer than the table of powers: then a few
        base = starts[first]
        last = max(int(np.searchsorted(starts, base + 2 * _GROUP_BYTES)), first + 1)
        part = buf[base : ends[last - 1]]
        qpow, ppow = _powers(len(part) + 1)
        running = np.zeros(len(part) + 1, dtype=np.uint64)
        np.cumsum(part * qpow[: len(part)], out=running[1:])
        s, e = starts[first:last] - base, ends[first:last] - base
        h[first:last] = (running[e] - running[s]) * ppow[s]
        first = last
    words_before = np.searchsorted(starts, np.cumsum([len(p) + 1 for p in parts]))
    doc = np.repeat(np.arange(len(parts)), np.diff(words_before, prepend=0))
    return _fmix(h ^ _U(_constant(seed, 0))), doc


def _shingle_hashes(h: np.ndarray, doc: np.ndarray, n_texts: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A hash per shingle (k consecutive words of one text) and the index of its text."""
    mult = [_U(_constant(seed, 1 + t) | 1) for t in range(k)]  # odd, so each position's word stays distinct
    m = max(len(h) - k + 1, 0)  # windows of k words, some of which cross from one text into the next
    acc = h[:m] * mult[0]
    for t in range(1, k):
        acc += h[t : t + m] * mult[t]
    inside = doc[:m] == doc[k - 1 : k - 1 + m]
    x, xdoc = acc[inside], doc[:m][inside]
    counts = np.bincount(doc, minlength=n_texts)
    short = np.flatnonzero((counts > 0) & (counts < k))
    if len(short):  # fewer words than a shingle: the whole text is its one shingle
        first = np.searchsorted(doc, short)
        tail = np.zeros(len(short), dtype=np.uint64)
        for t in range(k - 1):
            has = counts[short] > t
            tail[has] += h[first[has] + t] * mult[t]
        x, xdoc = np.concatenate([x, tail]), np.concatenate([xdoc, short])
    return _fmix(x + _U(_constant(seed, k + 1))), xdoc


def _sketch(x: np.ndarray, xdoc: np.ndarray, n_texts: int, num_perm: int, seed: int) -> np.ndarray:
    """num_perm bins per text, each holding the minimum over its text's shingles that land in it.

    Round 0 puts every shingle in one bin (one permutation hashing). Bins left empty are filled by further
    rounds, each hashing every shingle to a bin again, where a shingle of an earlier round always beats one of
    a later round (fast similarity sketching, Dahlgaard, Knudsen & Thorup 2017). A bin's value is thus the
    first of its (round, value) pairs over all rounds; each shingle of either text is equally likely to be it
    (for ideal hashes), so two texts' bins agree with probability their Jaccard similarity. A text stops taking
    rounds once every bin is filled, since later rounds could not change any of them. (Borrowing from a
    non-empty bin, as densified one permutation hashing does, costs about num_perm**2 probes for a text of
    one shingle; rounds cost about num_perm * log(num_perm) hashes.)
    """
    sig = np.full(n_texts * num_perm, EMPTY, dtype=np.uint32)
    np.minimum.at(sig, xdoc * num_perm + _bins(x, num_perm), np.minimum(x.astype(np.uint32), np.uint32(EMPTY - 1)))
    sig = sig.reshape(n_texts, num_perm)
    texts, done = np.flatnonzero(np.bincount(xdoc, minlength=n_texts)), 1  # texts still taking rounds; rounds taken
    while True:
        empty = (sig[texts] == EMPTY).sum(axis=1)
        texts, empty = texts[empty > 0], empty[empty > 0]
        if not len(texts):
            return sig
        local = np.full(n_texts, -1)
        local[texts] = np.arange(len(texts))
        at = local[xdoc]
        x, xdoc, at = x[at >= 0], xdoc[at >= 0], at[at >= 0]
        # A text of m shingles fills a given bin in a round with probability about m / num_perm, so this many
        # rounds fill its empty bins about two times in three. All texts take the same rounds (the fewest any
        # needs), which numpy broadcasts; texts done early drop out, and the rest take more rounds at a time.
        m = np.bincount(at, minlength=len(texts))
        count = int(np.ceil(num_perm / m * (np.log(empty) + 1)).min())
        mult, add = _round_constants(seed, done, count)
        y = x[:, None] * mult + add  # x is already well mixed: one multiply-add makes a round's hash
        key = (np.arange(count, dtype=np.uint64) << _U(32)) | np.minimum(y & _U(0xFFFFFFFF), _U(EMPTY - 1))
        best = np.full(len(texts) * num_perm, np.iinfo(np.uint64).max, dtype=np.uint64)
        np.minimum.at(best, (at[:, None] * num_perm + _bins(y, num_perm)).ravel(), key.ravel())
        rows = sig[texts]
        fill = (rows == EMPTY) & (best.reshape(rows.shape) != np.iinfo(np.uint64).max)
        rows[fill] = best.reshape(rows.shape)[fill].astype(np.uint32)  # the value; the earliest round won the bin
        sig[texts] = rows
        done += count


@lru_cache(maxsize=16)
def _round_table(seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    x = _fmix(np.arange(2 * size, dtype=np.uint64) * _U(0x9E3779B97F4A7C15) + _U(_constant(seed, -1)))
    return x[0::2] | _U(1), x[1::2]


def _round_constants(seed: int, start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Multiplier (odd) and addend of the hash of rounds start .. start + count - 1."""
    mult, add = _round_table(seed, 1 << (start + count).bit_length())
    return mult[start : start + count], add[start : start + count]


def _bins(y: np.ndarray, num_perm: int) -> np.ndarray:
    """The bin of each hash, from its high half (the low half is the value that competes in the bin)."""
    return (((y >> _U(32)) * _U(num_perm)) >> _U(32)).astype(np.int64)


_Q = 0x100000001B3  # the FNV prime: odd, so it has an inverse mod 2**64
_P = pow(_Q, -1, 1 << 64)
_power_cache: list[np.ndarray] = []


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Q**j and Q**-j mod 2**64 for j < n, kept between calls since every group needs them."""
    if not _power_cache or len(_power_cache[0]) < n:
        size = max(n, 2 * _GROUP_BYTES)
        for base in (_Q, _P):
            p = np.full(size, base, dtype=np.uint64)
            p[0] = 1
            _power_cache.append(np.multiply.accumulate(p))
        del _power_cache[:-2]
    return _power_cache[0], _power_cache[1]


def _constant(seed: int, i: int) -> int:
    """splitmix64 of (seed, i): the seed's constants, the same on every machine."""
    z = (seed * 0x9E3779B97F4A7C15 + i * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _fmix(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser, in place: every input bit reaches every output bit."""
    x ^= x >> _U(33)
    x *= _U(0xFF51AFD7ED558CCD)
    x ^= x >> _U(33)
    x *= _U(0xC4CEB9FE1A85EC53)
    x ^= x >> _U(33)
    return x
