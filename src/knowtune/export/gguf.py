"""A merged Hugging Face model folder as a GGUF file that llama.cpp and Ollama run as transformers does.

Written here on the gguf package (llama.cpp's own gguf-py: GGUFWriter, TensorNameMap, SpecialVocab, quants)
rather than by running convert_hf_to_gguf.py: that script is not on PyPI (vendoring it means 650k characters
of someone else's code to keep in step), and on the points that decide whether a file works it does what
knowtune must not: it writes the tokenizer's eos_token as EOS even when the chat template ends turns with
another token, and it marks every <|...|> token as control whatever the tokenizer says. Where it is right, it
is followed to the line: the Q/K permutation, which tensors stay float32, key names, the pre-tokenizer
checksum. llama.cpp's own quantiser (through llama-cpp-python) makes the k-quants, which gguf-py cannot.

Supported: LlamaForCausalLM and MistralForCausalLM (llama.cpp's "llama"), Qwen2ForCausalLM ("qwen2": q/k/v
biases, no permutation since llama.cpp's qwen2 rope already rotates halves), with silu MLPs without bias, rope
default, linear or llama3. The rest is refused by name.
"""

from __future__ import annotations

import ctypes
import os
from collections import Counter
from pathlib import Path

import numpy as np

from .gguf_error import GGUFError
from .gguf_llama_log import llama_cpp_warnings
from .gguf_tensors import nbytes, plan_tensors, tensor_data
from .gguf_vocab import declared_eos, read_vocab

__all__ = ["GGUFError", "write_gguf", "quantize_gguf"]

ARCHITECTURES = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2"}
FILE_TYPES = {"f32": 0, "f16": 1, "q8_0": 7}  # gguf.LlamaFileType: ALL_F32, MOSTLY_F16, MOSTLY_Q8_0


def write_gguf(model_dir: Path, out: Path, ftype: str = "f16", *, name: str | None = None) -> dict:
    """Write `model_dir` (config.json, model.safetensors, tokenizer) to `out` as GGUF in f32, f16 or q8_0."""
    import gguf
    from transformers import AutoConfig

    model_dir, out = Path(model_dir), Path(out)
    if ftype not in FILE_TYPES:
        raise GGUFError(f"ftype {ftype!r}: write_gguf writes {', '.join(FILE_TYPES)} (quantize_gguf makes q4_k_m)")
    config = AutoConfig.from_pretrained(model_dir)
    arch, hp, notes = hyperparameters(config)
    rope_freqs = llama3_rope_factors(hp)
    vocab = read_vocab(model_dir, hp["n_vocab"], declared_eos(model_dir))
    plan = plan_tensors(model_dir, arch, hp, ftype, rope_freqs)

    w = gguf.GGUFWriter(path=None, arch=arch)
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(name or model_dir.name)
    w.add_block_count(hp["n_layer"])
    w.add_context_length(hp["n_ctx"])
    w.add_embedding_length(hp["n_embd"])
    w.add_feed_forward_length(hp["n_ff"])
    w.add_head_count(hp["n_head"])
    w.add_head_count_kv(hp["n_head_kv"])
    w.add_rope_freq_base(hp["rope_theta"])
    w.add_layer_norm_rms_eps(hp["rms_eps"])
    if hp["head_dim"] != hp["n_embd"] // hp["n_head"]:  # llama.cpp assumes n_embd / n_head otherwise
        w.add_key_length(hp["head_dim"])
        w.add_value_length(hp["head_dim"])
    if hp["rope_type"] == "linear":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(hp["rope"]["factor"])
    w.add_file_type(FILE_TYPES[ftype])
    if arch == "llama":  # as LlamaModel.set_gguf_parameters; llama.cpp's qwen2 reads neither
        w.add_vocab_size(hp["n_vocab"])
        w.add_rope_dimension_count(hp["head_dim"])

    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(vocab.pre)
    w.add_token_list(vocab.tokens)
    w.add_token_types(vocab.types)
    w.add_token_merges(vocab.merges)
    for kind, token_id in vocab.special.items():
        getattr(w, f"add_{kind}_token_id")(token_id)
    # add_space_prefix only matters to sentencepiece vocabularies in llama.cpp, but transformers and Ollama read
    # it back: False is what every byte-level BPE accepted here does (a prefix space is refused as not GPT-2).
    w.add_add_space_prefix(False)
    w.add_add_bos_token(vocab.add_bos)
    if vocab.add_eos:
        w.add_add_eos_token(True)
    if vocab.chat_template is not None:
        w.add_chat_template(vocab.chat_template)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    for p in plan:
        w.add_tensor_info(p.name, p.shape, np.dtype(np.float32), nbytes(p), raw_dtype=p.qtype)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    try:
        w.write_header_to_file(path=tmp)
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        for data in tensor_data(model_dir, plan, rope_freqs):
            w.write_tensor_data(data)
        w.close()
        os.replace(tmp, out)  # a crash mid-write leaves no half file under the real name
    finally:
        w.close()
        tmp.unlink(missing_ok=True)
    return {
        "path": str(out),
        "ftype": ftype,
        "architecture": f"{config.architectures[0]} as {arch}",
        "tensors": len(plan),
        "megabytes": round(out.stat().st_size / 2**20, 1),
        "pre_tokenizer": f"{vocab.pre} ({vocab.pre_from})",
        "eos": f"{vocab.tokens[vocab.special['eos']]} ({vocab.eos_from})",
        "end_tokens": {k: vocab.tokens[v] for k, v in vocab.special.items() if k in ("eos", "eot", "eom")},
        "notes": notes + vocab.notes,
    }


def hyperparameters(config) -> tuple[str, dict, list[str]]:
    """llama.cpp's architecture name and the hyperparameters it reads, or a GGUFError saying what is unsupported."""
    hf_arch = (config.architectures or ["?"])[0]
    if hf_arch not in ARCHITECTURES:
        raise GGUFError(f"architecture {hf_arch} is not supported for GGUF export (supported: "
                        f"{', '.join(ARCHITECTURES)})")
    arch, notes = ARCHITECTURES[hf_arch], []
    if getattr(config, "hidden_act", "silu") != "silu" or getattr(config, "mlp_bias", False):
        raise GGUFError(f"{hf_arch} with hidden_act={config.hidden_act}, mlp_bias={getattr(config, 'mlp_bias', False)}:"
                        " llama.cpp's llama and qwen2 graphs compute a bias-free silu MLP")
    rope = dict(getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {})
    theta = rope.get("rope_theta", getattr(config, "rope_theta", None))
    rope_type = rope.get("rope_type", rope.get("type")) or "default"
    if rope_type not in ("default", "linear", "llama3") or (rope_type == "llama3" and arch != "llama"):
        raise GGUFError(f"{hf_arch} with rope_type {rope_type!r}: GGUF export writes default, linear and (llama) "
                        "llama3 rope")
    n_head = config.num_attention_heads
    hp = {
        "n_layer": config.num_hidden_layers, "n_ctx": config.max_position_embeddings,
        "n_embd": config.hidden_size, "n_ff": config.intermediate_size, "n_head": n_head,
        "n_head_kv": getattr(config, "num_key_value_heads", None) or n_head,
        "head_dim": getattr(config, "head_dim", None) or config.hidden_size // n_head,
        "rope_theta": float(theta if theta is not None else 10000.0), "rope_type": rope_type, "rope": rope,
        "rms_eps": config.rms_norm_eps, "n_vocab": config.vocab_size,
        "tied": bool(getattr(config, "tie_word_embeddings", False)),
    }
    window = getattr(config, "sliding_window", None)
    if hf_arch == "Qwen2ForCausalLM" and not getattr(config, "use_sliding_window", False):
        window = None
    if window and window < hp["n_ctx"]:
        # llama.cpp's llama and qwen2 attend to the whole context; within `window` tokens that is the same thing.
        notes.append(f"context length {hp['n_ctx']} capped to the sliding window {window}, beyond which llama.cpp "
                     "would attend where the model does not")
        hp["n_ctx"] = window
    return arch, hp, notes


def llama3_rope_factors(hp: dict) -> np.ndarray | None:
    """Llama 3.1's frequency-dependent rope scaling as the rope_freqs tensor llama.cpp multiplies by
    (LlamaModel.generate_extra_tensors in convert_hf_to_gguf.py)."""
    if hp["rope_type"] != "llama3":
        return None
    rope, dim = hp["rope"], hp["head_dim"]
    freqs = 1.0 / (hp["rope_theta"] ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    factor, low, high = rope.get("factor", 8.0), rope.get("low_freq_factor", 1.0), rope.get("high_freq_factor", 4.0)
    old_context = rope.get("original_max_position_embeddings", 8192)
    factors = []
    for freq in freqs:
        wavelen = 2 * np.pi / freq
        if wavelen < old_context / high:
            factors.append(1.0)
        elif wavelen > old_context / low:
            factors.append(factor)
        else:
            smooth = (old_context / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(factors, dtype=np.float32)


QUANT_KINDS = {"q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M", "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0"}


def quantize_gguf(src: Path, out: Path, kind: str = "q4_k_m") -> dict:
    """`src` (an f32 or f16 GGUF) quantised by llama.cpp's own quantiser, which picks per-tensor types as
    llama-quantize does (q4_k_m keeps some tensors at q6_k, and falls back where rows do not fit 256-blocks)."""
    import llama_cpp

    src, out = Path(src), Path(out)
    if kind not in QUANT_KINDS:
        raise GGUFError(f"quantize kind {kind!r}: supported are {', '.join(QUANT_KINDS)}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANT_KINDS[kind])
    params.nthread = os.cpu_count() or 1
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    try:
        with llama_cpp_warnings() as warnings:
            status = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
        if status != 0:
            raise GGUFError(f"llama.cpp could not quantise {src} to {kind} (status {status})")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    # One warning per tensor whose rows do not fit the k-quant's 256-value blocks: "... -> falling back to q5_0".
    fallbacks = Counter(line.rsplit("falling back to", 1)[1].strip() for line in warnings if "falling back to" in line)
    return {"path": str(out), "kind": kind, "megabytes": round(out.stat().st_size / 2**20, 1),
            "from_megabytes": round(src.stat().st_size / 2**20, 1), "fallback_tensors": dict(fallbacks)}
