"""GGUF export without llama.cpp: what the file says (read back with gguf's reader) and what transformers makes of it.

transformers loads a GGUF by undoing llama.cpp's conventions (the Q/K permutation among them), so a tiny
model written and read back with the same logits shows the tensors went in where llama.cpp expects them.
tests/integration/test_gguf_llamacpp.py runs the files in llama.cpp itself.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_pretrained
from knowtune.chat import stop_ids

SHAPE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=256)


def tiny_model(folder: Path, tokenizer, config_class=None, **overrides) -> Path:
    """A tiny randomly initialised model of `config_class` (Llama by default) with `tokenizer`, saved."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    config_class = config_class or LlamaConfig
    torch.manual_seed(0)
    config = config_class(**{**SHAPE, "vocab_size": len(tokenizer), "eos_token_id": tokenizer.eos_token_id,
                             "pad_token_id": tokenizer.pad_token_id, "tie_word_embeddings": True, **overrides})
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.eos_token_id = stop_ids(tokenizer)  # as knowtune's train stage sets it
    with torch.no_grad():  # norms away from 1 and non-zero biases, so a misplaced one shows in the logits
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or name.endswith(".bias"):
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def read(path: Path) -> tuple[dict, dict]:
    import gguf

    reader = gguf.GGUFReader(path)
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    tensors = {t.name: (t.tensor_type.name, [int(n) for n in t.shape]) for t in reader.tensors}
    return fields, tensors


def logits_of(folder: Path, ids: list[int], gguf_file: str | None = None) -> torch.Tensor:
    """The model's logits for `ids`: from the folder, or from the GGUF file alone (moved where no config.json
    is, so every hyperparameter comes from the file)."""
    from transformers import AutoModelForCausalLM

    if gguf_file:
        alone = folder / "gguf_alone"
        alone.mkdir(exist_ok=True)
        shutil.copy(folder / gguf_file, alone / gguf_file)
        folder = alone
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0]


@pytest.fixture
def scratch(tmp_path, tiny_tokenizer):
    return tiny_model(tmp_path / "scratch", tiny_tokenizer)


SAMPLE = "def take(self, item):\n\treturn self.items[item]  # café 3.14"


def test_scratch_llama_f32_metadata_tensors_and_logits(scratch, tiny_tokenizer):
    from knowtune.export.gguf import write_gguf

    counts = write_gguf(scratch, scratch / "model.gguf", "f32")
    fields, tensors = read(scratch / "model.gguf")
    tok = tiny_tokenizer
    assert counts["pre_tokenizer"] == "gpt-2 (tokenizer.json)"
    # The end of turn is EOS; the end of a document, where knowtune's generate() also stops, is EOT.
    assert counts["end_tokens"] == {"eos": "<|im_end|>", "eot": "<|endoftext|>"}
    assert not list(scratch.glob("*.tmp"))
    assert fields["general.architecture"] == "llama" and fields["general.file_type"] == 0
    assert {k: fields[f"llama.{k}"] for k in ("block_count", "context_length", "embedding_length",
            "feed_forward_length", "attention.head_count", "attention.head_count_kv", "vocab_size",
            "rope.dimension_count")} == {
        "block_count": 2, "context_length": 256, "embedding_length": 64, "feed_forward_length": 128,
        "attention.head_count": 4, "attention.head_count_kv": 2, "vocab_size": len(tok), "rope.dimension_count": 16}
    assert fields["llama.rope.freq_base"] == 10000.0
    assert fields["llama.attention.layer_norm_rms_epsilon"] == pytest.approx(1e-6)
    assert "llama.attention.key_length" not in fields  # head_dim is n_embd / n_head: llama.cpp's default

    assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "gpt-2"
    vocab = tok.get_vocab()
    assert fields["tokenizer.ggml.tokens"] == sorted(vocab, key=vocab.get)
    types = fields["tokenizer.ggml.token_type"]
    for special in ("<|im_end|>", "<|pad|>", "<|im_start|>", "<|endoftext|>"):
        assert types[vocab[special]] == 3  # control
    assert types[vocab["Ġ"]] == 1
    merges = json.loads((scratch / "tokenizer.json").read_text())["model"]["merges"]
    assert fields["tokenizer.ggml.merges"] == [" ".join(m) for m in merges]
    assert fields["tokenizer.ggml.eos_token_id"] == vocab["<|im_end|>"]
    assert fields["tokenizer.ggml.padding_token_id"] == vocab["<|pad|>"]
    assert "tokenizer.ggml.bos_token_id" not in fields and fields["tokenizer.ggml.add_bos_token"] is False
    assert fields["tokenizer.ggml.eot_token_id"] == vocab["<|endoftext|>"]
    assert fields["tokenizer.chat_template"] == tok.chat_template

    assert tensors["token_embd.weight"] == ("F32", [64, len(tok)])  # ggml order: row length first
    assert tensors["blk.1.attn_k.weight"] == ("F32", [64, 32])
    assert tensors["blk.0.ffn_down.weight"] == ("F32", [128, 64])
    assert "output.weight" not in tensors  # tied: llama.cpp reuses token_embd
    assert len(tensors) == 2 + 2 * 9

    ids = tok(SAMPLE)["input_ids"]
    torch.testing.assert_close(logits_of(scratch, ids, "model.gguf"), logits_of(scratch, ids), atol=1e-5, rtol=0)


def test_q_and_k_are_permuted_for_llama_cpp_rope(scratch):
    import gguf
    from safetensors.torch import load_file

    from knowtune.export.gguf import write_gguf
    from knowtune.export.gguf_tensors import permute

    write_gguf(scratch, scratch / "model.gguf", "f32")
    tensors = {t.name: np.array(t.data) for t in gguf.GGUFReader(scratch / "model.gguf").tensors}
    hf = load_file(scratch / "model.safetensors")
    q, k = (hf[f"model.layers.0.self_attn.{n}_proj.weight"].numpy() for n in "qk")
    np.testing.assert_array_equal(tensors["blk.0.attn_q.weight"], permute(q, 4))
    np.testing.assert_array_equal(tensors["blk.0.attn_k.weight"], permute(k, 2))  # by kv heads
    # Head 0's rows 0..7 (first rotary half) and 8..15 (second half) interleave: 0, 8, 1, 9, ...
    np.testing.assert_array_equal(tensors["blk.0.attn_q.weight"][:4], q[[0, 8, 1, 9]])
    np.testing.assert_array_equal(tensors["blk.0.attn_v.weight"], hf["model.layers.0.self_attn.v_proj.weight"])


def test_q8_0_quantises_matrices_and_stays_close(scratch, tiny_tokenizer):
    from knowtune.export.gguf import write_gguf

    write_gguf(scratch, scratch / "model-q8_0.gguf", "q8_0")
    fields, tensors = read(scratch / "model-q8_0.gguf")
    assert fields["general.file_type"] == 7
    assert tensors["token_embd.weight"][0] == "Q8_0" and tensors["blk.0.attn_q.weight"][0] == "Q8_0"
    assert tensors["blk.0.attn_norm.weight"][0] == "F32" and tensors["output_norm.weight"][0] == "F32"
    ids = tiny_tokenizer(SAMPLE)["input_ids"]
    ours, theirs = logits_of(scratch, ids, "model-q8_0.gguf"), logits_of(scratch, ids)
    assert (ours - theirs).abs().max() < 0.05 * theirs.abs().max()


def test_untied_output_is_written(tmp_path, tiny_tokenizer):
    from knowtune.export.gguf import write_gguf

    folder = tiny_model(tmp_path / "untied", tiny_tokenizer, tie_word_embeddings=False)
    write_gguf(folder, folder / "model.gguf", "f16")
    fields, tensors = read(folder / "model.gguf")
    assert tensors["output.weight"] == ("F16", [64, len(tiny_tokenizer)])
    assert fields["general.file_type"] == 1
    ids = tiny_tokenizer(SAMPLE)["input_ids"]
    torch.testing.assert_close(logits_of(folder, ids, "model.gguf"), logits_of(folder, ids), atol=2e-3, rtol=0)


def test_llama3_style_tokenizer_end_of_turn_is_eos_and_other_ends_are_eot(tmp_path):
    from transformers import AutoTokenizer

    from knowtune.export.gguf import write_gguf

    folder = make_pretrained(tmp_path / "llama3")
    tok = AutoTokenizer.from_pretrained(folder)
    generation = json.loads((folder / "generation_config.json").read_text())
    # As Llama 3 Instruct declares them: end of text and end of turn.
    generation["eos_token_id"] = [tok.convert_tokens_to_ids("<|end_of_text|>"), tok.convert_tokens_to_ids("<|eot_id|>")]
    (folder / "generation_config.json").write_text(json.dumps(generation))
    counts = write_gguf(folder, folder / "model.gguf", "f16")
    fields, _ = read(folder / "model.gguf")
    assert counts["end_tokens"] == {"eos": "<|eot_id|>", "eot": "<|end_of_text|>"}
    assert fields["tokenizer.ggml.pre"] == "gpt-2"  # trained here, so recognised from tokenizer.json
    assert fields["tokenizer.ggml.bos_token_id"] == tok.convert_tokens_to_ids("<|begin_of_text|>")
    assert fields["tokenizer.ggml.eos_token_id"] == tok.convert_tokens_to_ids("<|eot_id|>")
    assert fields["tokenizer.ggml.eot_token_id"] == tok.convert_tokens_to_ids("<|end_of_text|>")
    assert fields["tokenizer.ggml.add_bos_token"] is False  # the template writes {{ bos_token }} itself
    ids = tok(SAMPLE)["input_ids"]
    torch.testing.assert_close(logits_of(folder, ids, "model.gguf"), logits_of(folder, ids), atol=2e-3, rtol=0)


def test_added_text_token_is_user_defined(tmp_path, tiny_tokenizer):
    import copy

    from knowtune.export.gguf import write_gguf

    tok = copy.deepcopy(tiny_tokenizer)
    tok.add_tokens(["lamp_room"])  # a plain added token, not special
    folder = tiny_model(tmp_path / "added", tok)
    write_gguf(folder, folder / "model.gguf", "f32")
    fields, _ = read(folder / "model.gguf")
    i = tok.convert_tokens_to_ids("lamp_room")
    assert fields["tokenizer.ggml.tokens"][i] == "lamp_room"
    assert fields["tokenizer.ggml.token_type"][i] == 4  # user-defined: matched in text and printed


def name_checksum(monkeypatch, folder: Path, pre: str) -> None:
    """Enter the folder's tokenizer in the checksum table as `pre`.

    transformers 5 loads a tokenizer saved in a Qwen2 model folder as Qwen2Tokenizer, Qwen2's NFC normalizer
    and split over our vocabulary: a tokenizer no table knows and the exporter rightly refuses. Naming it lets
    a test of the Qwen2 weights run on a tiny vocabulary.
    """
    from hashlib import sha256

    from transformers import AutoTokenizer

    from knowtune.export import gguf_vocab

    tok = AutoTokenizer.from_pretrained(folder)
    monkeypatch.setitem(gguf_vocab.KNOWN_PRE_TOKENIZERS,
                        sha256(str(tok.encode(gguf_vocab.CHKTXT)).encode()).hexdigest(), pre)


@pytest.mark.parametrize("arch", ["qwen2", "mistral"])
def test_qwen2_and_mistral_round_trip(monkeypatch, tmp_path, tiny_tokenizer, arch):
    from transformers import MistralConfig, Qwen2Config

    from knowtune.export.gguf import write_gguf

    config_class = {"qwen2": Qwen2Config, "mistral": MistralConfig}[arch]
    # Not named "mistral": transformers reads a GGUF whose general.name says mistral as model_type mistral,
    # which its GGUF loader then cannot map (llama.cpp itself runs it as llama).
    folder = tiny_model(tmp_path / f"tiny_{arch[:4]}", tiny_tokenizer, config_class, sliding_window=None)
    if arch == "qwen2":
        name_checksum(monkeypatch, folder, "qwen2")
    counts = write_gguf(folder, folder / "model.gguf", "f32")
    fields, tensors = read(folder / "model.gguf")
    assert fields["general.architecture"] == {"qwen2": "qwen2", "mistral": "llama"}[arch]
    assert ("blk.0.attn_q.bias" in tensors) == (arch == "qwen2")
    assert counts["notes"] == []
    ids = tiny_tokenizer(SAMPLE)["input_ids"]
    torch.testing.assert_close(logits_of(folder, ids, "model.gguf"), logits_of(folder, ids), atol=1e-5, rtol=0)


def test_sliding_window_caps_the_context(tmp_path, tiny_tokenizer):
    from transformers import MistralConfig

    from knowtune.export.gguf import write_gguf

    folder = tiny_model(tmp_path / "mistral", tiny_tokenizer, MistralConfig, sliding_window=64)
    counts = write_gguf(folder, folder / "model.gguf", "f16")
    assert read(folder / "model.gguf")[0]["llama.context_length"] == 64
    assert "sliding window 64" in counts["notes"][0]


def test_llama3_rope_writes_rope_freqs(tmp_path, tiny_tokenizer):
    from knowtune.export.gguf import write_gguf

    rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
    folder = tiny_model(tmp_path / "llama31", tiny_tokenizer, rope_parameters=rope)
    write_gguf(folder, folder / "model.gguf", "f16")
    import gguf

    freqs = {t.name: np.array(t.data) for t in gguf.GGUFReader(folder / "model.gguf").tensors}["rope_freqs.weight"]
    assert freqs.shape == (8,) and freqs[0] == 1.0 and freqs[-1] == 8.0  # fast dims kept, slow ones scaled


def test_unknown_architecture_is_refused(scratch):
    from knowtune.export.gguf import GGUFError, write_gguf

    config = json.loads((scratch / "config.json").read_text())
    config["architectures"] = ["FalconForCausalLM"]
    (scratch / "config.json").write_text(json.dumps(config))
    with pytest.raises(GGUFError, match="FalconForCausalLM is not supported.*LlamaForCausalLM") as err:
        write_gguf(scratch, scratch / "model.gguf", "f16")
    assert "\n" not in str(err.value)
    assert not (scratch / "model.gguf").exists()


@pytest.mark.parametrize("pre_tokenizer", [
    {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True},
                                           {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                                            "use_regex": True}]},
    {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
])
def test_unknown_pre_tokenizer_is_refused(tmp_path, scratch, pre_tokenizer):
    from knowtune.export.gguf import GGUFError, write_gguf

    folder = tmp_path / "other_pre"
    shutil.copytree(scratch, folder)
    spec = json.loads((folder / "tokenizer.json").read_text())
    spec["pre_tokenizer"] = pre_tokenizer
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(GGUFError, match="unknown pre-tokenizer: chktxt hash [0-9a-f]{64}") as err:
        write_gguf(folder, folder / "model.gguf", "f16")
    assert "\n" not in str(err.value)


def test_known_checksum_names_the_pre_tokenizer(monkeypatch, scratch):
    """A published tokenizer is named by llama.cpp's checksum table, before any structural guess."""
    from knowtune.export.gguf import write_gguf

    name_checksum(monkeypatch, scratch, "smollm")
    assert write_gguf(scratch, scratch / "model.gguf", "f16")["pre_tokenizer"] == "smollm (checksum)"


def test_unknown_ftype_is_refused(scratch):
    from knowtune.export.gguf import GGUFError, write_gguf

    with pytest.raises(GGUFError, match="q4_k_m"):
        write_gguf(scratch, scratch / "model.gguf", "q4_k_m")
