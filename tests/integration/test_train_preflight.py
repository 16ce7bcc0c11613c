"""The preflight refuses the mistakes fine-tuning users hit most, each with a message that says what to do."""

import pytest

from conftest import CHATML_LIKE_BROKEN, make_pretrained, make_train_data
from knowtune.examples.tokenizer import load_pretrained
from knowtune.config import TrainConfig
from knowtune.chat import CHATML
from knowtune.train.model import HardwareError, check_hardware
from knowtune.train.preflight import PreflightError
from knowtune.train.run import prepare


def setup(tmp_path, change=None, **kw):
    base = make_pretrained(tmp_path / "base")
    tok = load_pretrained(str(base))
    if change:
        change(tok)
    dataset, tokenizer = make_train_data(tmp_path / "data", tok)
    cfg = TrainConfig(**{"base_model": str(base), "precision": "fp32", "max_length": 64, "batch_size": 4, "max_steps": 2, **kw})
    return cfg, dataset, tokenizer


def test_a_pad_token_equal_to_eos_is_refused(tmp_path):
    def pad_is_eos(tok):
        tok.pad_token = tok.eos_token

    cfg, dataset, tokenizer = setup(tmp_path, pad_is_eos)
    with pytest.raises(PreflightError, match=r"pad token '<\|eot_id\|>' .* never learn to stop"):
        prepare(cfg, dataset, tokenizer, tmp_path / "train")


def test_a_training_template_other_than_the_models_own_is_refused(tmp_path):
    def chatml(tok):
        tok.chat_template = CHATML  # a stale tokenizer stage: the model's own template is Llama-3 style

    cfg, dataset, tokenizer = setup(tmp_path, chatml)
    with pytest.raises(PreflightError, match="differs from the one the training data is rendered with"):
        prepare(cfg, dataset, tokenizer, tmp_path / "train")


def test_a_template_whose_inference_prompt_is_not_the_trained_text_is_refused(tmp_path):
    def broken(tok):
        tok.chat_template = CHATML_LIKE_BROKEN

    cfg, dataset, tokenizer = setup(tmp_path, broken, base_model="scratch")
    with pytest.raises(PreflightError, match="not the start of the trained conversation"):
        prepare(cfg, dataset, tokenizer, tmp_path / "train")


def test_examples_over_max_length_are_refused_unless_truncation_is_on(tmp_path):
    cfg, dataset, tokenizer = setup(tmp_path)
    short = cfg.model_copy(update={"max_length": 20})
    with pytest.raises(PreflightError, match=r"longer than train.max_length 20 .* train.truncation: true"):
        prepare(short, dataset, tokenizer, tmp_path / "train")
    cut = short.model_copy(update={"truncation": True})
    p = prepare(cut, dataset, tokenizer, tmp_path / "train")
    assert max(len(r) for r in p.trainer.train_dataset["input_ids"]) <= 20


@pytest.mark.parametrize("objective", ["dpo", "orpo"])
def test_a_rejected_answer_over_max_length_is_refused_too(tmp_path, objective):
    # the chosen answers fit; TRL would cut the rejected ones silently
    base = make_pretrained(tmp_path / "base")
    dataset, tokenizer = make_train_data(tmp_path / "data", load_pretrained(str(base)),
                                         rejected_tail=" It has burnt that colour every night since the tower was built" * 3)
    cfg = TrainConfig(base_model=str(base), method="lora", objective=objective, precision="fp32", max_length=48,
                      max_steps=2)
    with pytest.raises(PreflightError, match=r"prompt \+ rejected answer .* longer than train.max_length 48"):
        prepare(cfg, dataset, tokenizer, tmp_path / "train")
    prepare(cfg.model_copy(update={"truncation": True}), dataset, tokenizer, tmp_path / "train")  # or cut


@pytest.mark.parametrize("setting, message", [
    ({"precision": "fp16"}, "train.precision: fp16 mixed precision needs a CUDA GPU"),
    ({"attention": "flash_attention_2"}, "train.attention: flash_attention_2 needs a CUDA GPU"),
    ({"optimizer": "paged_adamw_8bit"}, "train.optimizer: paged_adamw_8bit pages optimizer states"),
])
def test_gpu_only_settings_fail_on_a_cpu_with_what_to_use_instead(setting, message):
    with pytest.raises(HardwareError, match=message):
        check_hardware(TrainConfig(**setting))


@pytest.mark.parametrize("native", ["0", "1"])
def test_bf16_runs_where_the_cpu_has_it_and_is_refused_where_it_would_be_emulated(native, monkeypatch):
    from knowtune.hardware import native_bf16

    monkeypatch.setenv("KNOWTUNE_BF16", native)  # the detection's override: either kind of CPU, on this one
    native_bf16.cache_clear()
    try:
        if native == "1":
            check_hardware(TrainConfig(precision="bf16"))
        else:
            with pytest.raises(HardwareError, match="bf16 on this CPU would be emulated.*use auto or fp32"):
                check_hardware(TrainConfig(precision="bf16"))
    finally:
        monkeypatch.delenv("KNOWTUNE_BF16")
        native_bf16.cache_clear()


@pytest.mark.parametrize("optimizer", ["adamw_torch", pytest.param("sgd", marks=pytest.mark.slow)])
def test_the_memory_estimate_is_within_30_percent_of_a_measured_run(tmp_path, optimizer):
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parent / "measure_train_memory.py"
    proc = subprocess.run([sys.executable, str(script), str(tmp_path), "1024", optimizer], capture_output=True,
                          text=True, timeout=600, env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    measured, estimate = got["measured_gib"], got["estimate_gib"]["total"]
    print(optimizer, f"estimate {estimate:.3f} GiB, measured {measured:.3f} GiB")
    assert abs(estimate - measured) <= 0.3 * measured, got


def test_the_memory_estimate_follows_the_method(tmp_path):
    from transformers import AutoModelForCausalLM

    from knowtune.train.preflight import memory_estimate

    base = make_pretrained(tmp_path / "base")
    model = AutoModelForCausalLM.from_pretrained(base)
    full = memory_estimate(model, batch_tokens=8 * 512, optimizer="adamw_torch", checkpointing=False)
    checkpointed = memory_estimate(model, batch_tokens=8 * 512, optimizer="adamw_torch", checkpointing=True)
    assert checkpointed["activations"] < full["activations"]
    for p in model.parameters():
        p.requires_grad_(False)
    frozen = memory_estimate(model, batch_tokens=8 * 512, optimizer="adamw_torch", checkpointing=False)
    assert frozen["gradients"] == frozen["optimizer_states"] == 0
    assert frozen["total"] < full["total"]
