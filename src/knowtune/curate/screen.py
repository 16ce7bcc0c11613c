"""A cheap first pass for semantic dedup: which texts could have a near-duplicate at all.

Each vocabulary token is embedded once by the same model, alone between its
special tokens (model2vec's idea); a text's static vector is then the
SIF-weighted mean of its tokens' vectors (frequent tokens count less), less the
corpus's mean vector, with no model run per text: forty times faster than
`embed`. Static vectors are too coarse to decide a 0.95 threshold themselves
(benchmarks/semantic_dedup.py: precision 0.68 there), but a text whose static
nearest neighbour is far below the threshold has no near-duplicate, so only the
rest need `embed`: a sixth of the benchmark corpus.
"""

from __future__ import annotations

import faiss
import numpy as np

from .embed import encoder, one_thread_each

SIF = 1e-3  # a token that is a share p of the corpus weighs SIF / (SIF + p)
# Below this many texts screening saves seconds at most, and the corpus mean
# is a poor centre (two texts minus their mean point in opposite directions).
MIN_TEXTS = 200
# model name -> (vocabulary, d) token vectors and which rows are filled: one
# model run per token per process, only for tokens a corpus uses
_tables: dict[str, tuple[np.ndarray, np.ndarray]] = {}
TOKEN_BATCH = 256  # tokens per model run


def token_vectors(model: str, needed: np.ndarray) -> np.ndarray:
    """The table of token vectors, with at least the `needed` token ids filled in."""
    import torch

    st, _ = encoder(model)
    tok = st.tokenizer
    if model not in _tables:
        _tables[model] = np.zeros((len(tok), st.get_embedding_dimension()), np.float32), np.zeros(len(tok), bool)
    table, filled = _tables[model]
    missing = torch.as_tensor(needed[~filled[needed]], dtype=torch.long)

    # Which tokens are missing depends on what this process screened before, so a token's vector must not
    # depend on the batch it lands in: every batch has the same shape (the last one is filled up with
    # copies), and each runs on one thread (see embed.py for why both matter).
    def run(start: int) -> None:
        ids = missing[start:start + TOKEN_BATCH]
        n = len(ids)
        ids = torch.cat([ids, ids[-1:].expand(TOKEN_BATCH - n)]).unsqueeze(1)
        # every row is [CLS] token [SEP]: no padding inside a row either
        batch = torch.cat([torch.full_like(ids, tok.cls_token_id), ids, torch.full_like(ids, tok.sep_token_id)], 1)
        batch = batch.to(st.device)
        with torch.inference_mode():
            out = st({"input_ids": batch, "attention_mask": torch.ones_like(batch)})["sentence_embedding"]
        table[ids[:n, 0].numpy()] = out[:n].float().cpu().numpy()

    one_thread_each(run, range(0, len(missing), TOKEN_BATCH))
    filled[needed] = True
    return table


def static_vectors(texts: list[str], model: str = "all-MiniLM-L6-v2") -> np.ndarray:
    """(n, d) L2-normalised static vectors of the texts, read through the same window as `embed`.

    Token weights and the mean come from `texts` themselves: call it on the whole corpus, not batch by batch.
    """
    st, _ = encoder(model)
    rows = [np.asarray(r, dtype=np.int64) for r in
            st.tokenizer(texts, add_special_tokens=False, truncation=True, max_length=st.max_seq_length)["input_ids"]]
    every = np.concatenate(rows + [np.zeros(0, np.int64)])
    table = token_vectors(model, np.unique(every))
    counts = np.bincount(every, minlength=len(table)) + 1.0
    weights = SIF / (SIF + counts / counts.sum())
    # In float64: the sums' order (BLAS blocking, threads) then moves a vector by about 1e-16, far below
    # what rounding the result to float32 keeps, so a text's vector is the same however numpy is set up.
    out = np.zeros((len(texts), table.shape[1]), dtype=np.float64)
    for i, r in enumerate(rows):
        if len(r):
            out[i] = weights[r] @ table[r].astype(np.float64) / weights[r].sum()
    # The mean is what every text shares (common tokens, the language);
    # without removing it all long texts sit near each other.
    some = np.array([len(r) > 0 for r in rows], dtype=bool)
    if some.any():
        out[some] -= out[some].mean(0)
    return (out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def screen(texts: list[str], model: str = "all-MiniLM-L6-v2", threshold: float = 0.8) -> list[int]:
    """Indices of the texts whose static nearest neighbour is at `threshold` cosine or more.

    Only these can be near-duplicates at a 0.95 `embed` threshold: on the
    benchmark corpus every pair `embed` puts at 0.95 or more has static cosines
    of 0.83 or more to its nearest neighbours. Run `embed` and
    `semantic_duplicates` on these texts; the others are kept. A corpus of
    fewer than MIN_TEXTS texts passes whole.
    """
    scores = screen_scores(texts, model)
    if scores is None:
        return list(range(len(texts)))
    return [int(i) for i in np.flatnonzero(scores >= threshold)]


def screen_scores(texts: list[str], model: str = "all-MiniLM-L6-v2") -> np.ndarray | None:
    """Each text's static cosine to its nearest other text; None for a corpus too small to screen."""
    if len(texts) < MIN_TEXTS:
        return None
    return nearest_other(static_vectors(texts, model))


def nearest_other(vectors: np.ndarray, k: int = 4) -> np.ndarray:
    """Each row's cosine to its nearest other row, in float64.

    FAISS finds the candidates; their cosines are then computed again in float64, because FAISS's own
    float32 scores depend on its BLAS blocking and thread count: a text at the threshold would pass the
    screen or not by how the machine was loaded.
    """
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    _, found = index.search(vectors, min(k, len(vectors)))
    exact = exact_cosines(vectors, vectors, found)
    exact[found == np.arange(len(vectors))[:, None]] = -np.inf  # the text itself (an identical one counts)
    return exact.max(axis=1)


def exact_cosines(queries: np.ndarray, base: np.ndarray, found: np.ndarray) -> np.ndarray:
    """(n, k) float64 dot products of each query row with the base rows `found` names (-1: none, -inf)."""
    q = queries.astype(np.float64)
    rows = base.astype(np.float64)[np.maximum(found, 0)]
    out = np.einsum("nd,nkd->nk", q, rows)
    out[found < 0] = -np.inf
    return out
