"""A GGUF file as the base model: read once by the base stage, dequantised, and trained like any other."""

import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import FIXTURE
from knowtune.chat import CHATML

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def make_gguf(folder, quant="q8_0"):
    """A tiny Llama with a SmolLM2-like vocabulary (pad = EOS = <|im_end|>, <|endoftext|> its own), as a
    quantised GGUF file: what a user's Ollama or LM Studio download looks like."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from knowtune.export.gguf import write_gguf

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    texts = [p.read_text() for p in FIXTURE.rglob("*") if p.is_file() and p.suffix in (".py", ".md")]
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=512, special_tokens=SPECIALS,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                  pad_token="<|im_end|>", unk_token="<|endoftext|>")
    tok.chat_template = CHATML
    hf = folder / "hf"
    tok.save_pretrained(hf)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         max_position_embeddings=512, bos_token_id=tok.bos_token_id,
                                         eos_token_id=tok.eos_token_id, tie_word_embeddings=True))
    model.save_pretrained(hf)
    path = folder / f"tiny.{quant}.gguf"
    write_gguf(hf, path, quant)
    return path


@pytest.fixture(scope="module")
def gguf(tmp_path_factory):
    return make_gguf(tmp_path_factory.mktemp("gguf"))


def knowtune(*args):
    proc = subprocess.run([sys.executable, "-m", "knowtune", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "de-quantizing" not in proc.stderr  # transformers' own bar stays off the console
    return proc.stdout


def config(tmp_path, gguf, **train):
    from conftest import make_repo

    repo = make_repo(tmp_path / "repo")
    settings = {"base_model": str(gguf), "precision": "fp32", "max_length": 256, "batch_size": 4, "max_steps": 3,
                **train}
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(json.dumps({"name": "g", "runs_dir": str(tmp_path / "runs"),
                               "sources": [{"type": "repo", "path": str(repo)}],
                               "curate": {"semantic_dedup": {"enabled": False}}, "train": settings}))
    return cfg


@pytest.mark.parametrize("method", ["lora", pytest.param("full", marks=pytest.mark.slow)])
def test_a_quantised_gguf_trains_from_its_dequantised_weights_converted_once(tmp_path, gguf, method):
    cfg = config(tmp_path, gguf, method=method)
    knowtune("ingest", cfg)
    out = knowtune("build", cfg)
    assert "base: running" in out and "dequantising tiny.q8_0.gguf" in out
    run = tmp_path / "runs" / "g"
    base = json.loads((run / "base" / "manifest.json").read_text())["counts"]
    assert base["dequantised_from"] == "Q8_0" and base["architecture"] == "llama"
    tok = json.loads((run / "tokenizer" / "manifest.json").read_text())["counts"]
    # pad is the vocabulary's own <|endoftext|>, not the EOS the file names as pad, and no token was added
    assert tok["pad"] == "<|endoftext|>" and tok["eos"] == "<|im_end|>" and tok["vocab_size"] == 512
    out = knowtune("run", cfg)
    assert "base: unchanged, skipped" in out and "dequantising" not in out  # converted once, reused
    assert "dequantised from Q8_0 to float32" in out  # the preflight says where the weights came from
    counts = json.loads((run / "train" / "manifest.json").read_text())["counts"]
    assert counts["steps"] == 3 and counts["method"] == method
    from transformers import AutoModelForCausalLM

    trained = AutoModelForCausalLM.from_pretrained(run / "train" / "model")
    original = AutoModelForCausalLM.from_pretrained(run / "base")
    moved = max((a - b).abs().max().item() for a, b in zip(trained.parameters(), original.parameters()))
    assert moved > 0


def test_the_dequantised_weights_are_the_files_values(tmp_path, gguf):
    from gguf import GGUFReader, dequantize

    from knowtune.base_model import gguf_header, load_gguf

    assert gguf_header(gguf) == ("Q8_0", "llama")
    model, tokenizer = load_gguf(gguf, "llama")
    reader = GGUFReader(gguf)
    stored = next(t for t in reader.tensors if t.name == "blk.0.ffn_down.weight")
    values = torch.from_numpy(dequantize(stored.data, stored.tensor_type).copy()).reshape(128, 64)
    # down projections are not permuted, so they compare as they are (GGUF stores them rows first too)
    assert torch.equal(model.model.layers[0].mlp.down_proj.weight, values.reshape(64, 128))


def test_what_cannot_be_read_is_refused_in_one_line(tmp_path):
    from knowtune.base_model import gguf_header, gguf_path
    from knowtune.runs import StageError

    with pytest.raises(StageError, match="is not a file"):
        gguf_path(str(tmp_path / "missing.gguf"))
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 20)
    with pytest.raises(StageError, match="not a readable GGUF file"):
        gguf_header(broken)
