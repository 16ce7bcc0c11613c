"""A base model from a local folder (as a hub download would be): its own tokenizer and chat template are used."""

import json
import subprocess
import sys

import pytest
from transformers import AutoConfig, AutoTokenizer

from conftest import LLAMA3_TEMPLATE, make_pretrained, make_repo
from knowtune.records import Example, read_jsonl
from knowtune.chat import CHATML, IGNORE, encode_example

CONFIG = """
name: pre
runs_dir: {runs}
sources: [{{type: repo, path: {repo}}}]
train: {{base_model: {model}, precision: fp32, max_length: 384, batch_size: 4, max_steps: 2}}
eval: {{knowledge_samples: 2, trained_samples: 2, max_new_tokens: 8, general_samples: 4, paraphrase_samples: 2, test_samples: 2}}
"""


def run(tmp_path, model):
    repo = make_repo(tmp_path / "repo", history=False)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG.format(runs=tmp_path / "runs", repo=repo, model=model))
    proc = subprocess.run([sys.executable, "-m", "knowtune", "run", str(cfg)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return tmp_path / "runs" / "pre"


def test_an_instruct_model_keeps_its_own_template_and_tokens(tmp_path):
    model = make_pretrained(tmp_path / "base")
    out = run(tmp_path, model)
    tok = AutoTokenizer.from_pretrained(out / "export" / "merged")
    assert tok.chat_template == LLAMA3_TEMPLATE
    assert len(tok) == len(AutoTokenizer.from_pretrained(model))  # nothing added
    # Training masked by that template: only the reply and <|eot_id|> are trained.
    ex = next(e for e in read_jsonl(out / "dataset" / "train" / "examples.jsonl", Example) if e.kind != "raw")
    row = encode_example(tok, ex)
    trained = tok.decode([t for t, lab in zip(row["input_ids"], row["labels"]) if lab != IGNORE])
    assert trained == ex.messages[-1]["content"].strip() + "<|eot_id|>"
    counts = json.loads((out / "train" / "manifest.json").read_text())["counts"]
    assert counts["learning_rate"] == 2e-5  # the fine-tuning default, not the from-scratch one


@pytest.mark.slow
def test_a_base_model_without_a_template_learns_chatml_with_new_tokens(tmp_path):
    model = make_pretrained(tmp_path / "base", chat_template=None)
    out = run(tmp_path, model)
    tok = AutoTokenizer.from_pretrained(out / "export" / "merged")
    assert tok.chat_template == CHATML
    assert tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id
    assert tok.eos_token == "<|im_end|>"
    config = AutoConfig.from_pretrained(out / "export" / "merged")
    assert config.vocab_size == len(tok) > len(AutoTokenizer.from_pretrained(model))
