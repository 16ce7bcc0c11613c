"""The weights half of a GGUF file: Hugging Face tensor names to llama.cpp's, layouts, and storage types.

Follows convert_hf_to_gguf.py (`LlamaModel.modify_tensors`, `ModelBase.prepare_tensors`): names through the
gguf package's own TensorNameMap, norms and other 1-D tensors kept in float32, 2-D weights in the file's type
(q8_0 falling back to f16 for a row that is not a whole number of 32-value blocks), and no output.weight for a
model whose output layer is its embedding (llama.cpp then reuses token_embd).

Tensors are planned from the safetensors headers first and converted one at a time as they are written, so
exporting a 7B model holds one tensor in memory, not the model.
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .gguf_error import GGUFError


@dataclass
class Planned:
    name: str  # in the GGUF
    source: str | None  # in the safetensors; None for a tensor made here (rope_freqs)
    shape: tuple[int, ...]
    qtype: object  # gguf.GGMLQuantizationType
    permute_heads: int | None  # Q/K rows to reorder for llama.cpp's rope, as this many heads


def permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    """Q or K rows reordered from Hugging Face's rope layout to llama.cpp's (convert_hf_to_gguf's LlamaModel.permute).

    transformers' Llama rotates the first half of each head against the second (rotate_half); llama.cpp's
    "llama" rope rotates adjacent pairs. Within each head, row j of the first half and row j of the second
    half become rows 2j and 2j+1. `n_head` is the number of heads these rows hold: n_kv_head for K.
    """
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2)
            .reshape(weights.shape))


def safetensors_files(model_dir: Path) -> list[Path]:
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        return [model_dir / f for f in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
    single = model_dir / "model.safetensors"
    if not single.is_file():
        raise GGUFError(f"{model_dir}: no model.safetensors (GGUF export reads merged safetensors weights)")
    return [single]


def plan_tensors(model_dir: Path, arch: str, hp: dict, ftype: str, rope_freqs: np.ndarray | None) -> list[Planned]:
    import gguf
    from safetensors import safe_open

    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA if arch == "llama" else gguf.MODEL_ARCH.QWEN2,
                                        hp["n_layer"])
    plan = []
    if rope_freqs is not None:
        plan.append(Planned("rope_freqs.weight", None, rope_freqs.shape, gguf.GGMLQuantizationType.F32, None))
    for path in safetensors_files(model_dir):
        with safe_open(path, framework="pt") as f:
            for source in f.keys():
                if source.endswith(".rotary_emb.inv_freq"):
                    continue
                if source == "lm_head.weight" and hp["tied"]:
                    continue  # tied: llama.cpp computes the output from token_embd, as the model did
                name = name_map.get_name(source, try_suffixes=(".weight", ".bias"))
                if name is None:
                    raise GGUFError(f"{source}: a tensor with no llama.cpp {arch} counterpart")
                shape = tuple(f.get_slice(source).get_shape())
                heads = None
                if arch == "llama" and name.startswith("blk.") and name.split(".")[2] in ("attn_q", "attn_k"):
                    heads = hp["n_head"] if name.split(".")[2] == "attn_q" else hp["n_head_kv"]
                plan.append(Planned(name, source, shape, storage_type(name, shape, ftype), heads))
    names = {p.name for p in plan}
    if "output.weight" not in names and not hp["tied"]:
        raise GGUFError(f"{model_dir}: no lm_head.weight, and tie_word_embeddings is false")
    if "token_embd.weight" not in names:
        raise GGUFError(f"{model_dir}: no embed_tokens weight")
    return plan


def storage_type(name: str, shape: tuple[int, ...], ftype: str):
    import gguf

    q = gguf.GGMLQuantizationType
    # llama.cpp's kernels take norms and 1-D tensors in float32 only.
    if ftype == "f32" or len(shape) <= 1 or name.endswith("_norm.weight"):
        return q.F32
    if ftype == "f16":
        return q.F16
    return q.Q8_0 if shape[-1] % gguf.GGML_QUANT_SIZES[q.Q8_0][0] == 0 else q.F16


def nbytes(p: Planned) -> int:
    import gguf

    block, size = gguf.GGML_QUANT_SIZES[p.qtype]
    return math.prod(p.shape) // block * size


def tensor_data(model_dir: Path, plan: list[Planned], rope_freqs: np.ndarray | None) -> Iterator[np.ndarray]:
    """The planned tensors' bytes, in plan order, one at a time."""
    import gguf
    from safetensors import safe_open

    with contextlib.ExitStack() as stack:
        where = {}
        for path in safetensors_files(model_dir):
            handle = stack.enter_context(safe_open(path, framework="pt"))
            where.update({k: handle for k in handle.keys()})
        for p in plan:
            # bfloat16 (and any other storage type) through float32, as the converter does
            data = rope_freqs if p.source is None else where[p.source].get_tensor(p.source).float().numpy()
            if p.permute_heads:
                data = permute(data, p.permute_heads)
            yield gguf.quants.quantize(np.ascontiguousarray(data), p.qtype)
