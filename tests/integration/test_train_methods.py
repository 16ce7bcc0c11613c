"""Every method and objective on a tiny model: loss falls, what trains changes, what is frozen does not."""

import json
import re

import pytest
import torch
from transformers import AutoModelForCausalLM

from conftest import TINY_SHAPE, make_pretrained, make_train_data
from knowtune.config import TrainConfig
from knowtune.train.run import prepare, run_train, save_model

METHODS = ["full", "lora", "dora", "qlora"]


def config(tmp_path, **kw):
    base = kw.pop("base_model", None) or str(make_pretrained(tmp_path / "base"))
    defaults = dict(base_model=base, precision="fp32", max_length=64, batch_size=4, max_steps=24, epochs=100, learning_rate=3e-3,
                    logging_steps=2, eval_steps=12, warmup_ratio=0.0, scheduler="constant",
                    lora={"r": 8, "alpha": 16, "dropout": 0.0})
    return TrainConfig(**{**defaults, **kw})


def data(tmp_path, tokenizer_dir=None):
    from transformers import AutoTokenizer

    from knowtune.examples.tokenizer import load_pretrained

    tok = load_pretrained(str(tokenizer_dir or tmp_path / "base"))
    return make_train_data(tmp_path / "data", tok)


def losses(out):
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def train_and_compare(tmp_path, cfg):
    dataset, tokenizer = data(tmp_path)
    out = tmp_path / "train"
    p = prepare(cfg, dataset, tokenizer, out)
    model = p.trainer.model
    before = snapshot(model)
    p.trainer.train()
    after = dict(model.named_parameters())
    trainable = {n for n, q in after.items() if q.requires_grad}
    assert trainable, "nothing trains"
    for n, old in before.items():
        changed = not torch.equal(old, after[n].detach())
        assert changed == (n in trainable), f"{n}: trainable {n in trainable} but changed {changed}"
    curve = losses(out)
    assert curve[-1] < curve[0] - 0.3, curve  # nats per token: far beyond step-to-step noise
    return p, model


@pytest.mark.parametrize("method", METHODS)
def test_each_method_learns_with_sft(tmp_path, method):
    p, model = train_and_compare(tmp_path, config(tmp_path, base_model=None, method=method))
    names = [n for n, _ in model.named_parameters()]
    if method == "full":
        assert p.params["trainable_parameters"] == p.params["parameters"]
    else:
        assert p.params["trainable_parameters"] < p.params["parameters"] / 2
        assert any("lora_A" in n for n in names)
        # all-linear: every projection of attention and MLP has an adapter, the output head none
        adapted = {n.split(".lora_A")[0].split(".")[-1] for n in names if "lora_A" in n}
        assert adapted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    if method == "dora":
        magnitudes = [q for n, q in model.named_parameters() if "lora_magnitude_vector" in n]
        assert magnitudes and all(q.requires_grad for q in magnitudes)
    if method == "qlora":
        import bitsandbytes as bnb

        layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
        assert len(layers) == 2 * 7  # two blocks of seven projections
        for layer in layers:
            assert layer.weight.quant_type == "nf4"
            assert layer.weight.quant_state.nested  # double quantisation: the scales are quantised too


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_the_saved_model_computes_what_the_trained_adapter_did(tmp_path, method):
    cfg = config(tmp_path, base_model=None, method=method, max_steps=6)
    dataset, tokenizer = data(tmp_path)
    out = tmp_path / "train"
    p = prepare(cfg, dataset, tokenizer, out)
    p.trainer.train()
    ids = torch.tensor([[5, 17, 33, 2, 9]])
    with torch.no_grad():
        trained = p.trainer.model(ids).logits
    save_model(p.trainer.model, p.tokenizer, cfg, out)
    assert (out / "adapter" / "adapter_config.json").is_file()
    merged = AutoModelForCausalLM.from_pretrained(out / "model")
    assert "quantization_config" not in json.loads((out / "model" / "config.json").read_text())
    with torch.no_grad():
        diff = (merged(ids).logits - trained).abs().max()
    # bitsandbytes' CPU 4-bit matmul itself differs from dequantise-then-multiply by about 2e-3 a layer
    assert diff < (1e-4 if method == "lora" else 1e-2), diff


def test_a_run_saves_its_model_and_preflight_and_leaves_no_checkpoints(tmp_path):
    cfg = config(tmp_path, base_model=None, method="lora", max_steps=4)
    dataset, tokenizer = data(tmp_path)
    out = tmp_path / "train"
    counts = run_train(cfg, dataset, tokenizer, out)
    assert counts["steps"] == 4 and counts["tokens"] > 0 and counts["resumed_from_step"] == 0
    assert AutoModelForCausalLM.from_pretrained(out / "model").config.vocab_size > 0
    assert not (out / "checkpoints").exists()
    page = (out / "preflight.html").read_text()
    # the answer and its end-of-turn token are trained (bold), the question is not
    assert re.findall(r"<b>(.*?)</b>", page) == ["Lamp 0 burns red.&lt;|eot_id|&gt;"]
    summary = json.loads((out / "preflight.json").read_text())
    assert summary["special_tokens"]["pad"]["id"] != summary["special_tokens"]["eos"]["id"]
    assert summary["effective_batch_size"] == 4 and summary["steps"] == 4


def test_tensorboard_tracking_writes_each_run_its_own_curves(tmp_path):
    import os

    import torch
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    threads = torch.get_num_threads()
    base = config(tmp_path, method="lora", max_steps=4, logging_steps=1, eval_steps=2, tracking=["tensorboard"],
                  threads=1)
    dataset, tokenizer = data(tmp_path)
    for trial in ("a", "b"):  # as two trials of a sweep run one after the other in one process
        cfg = base.model_copy(update={"seed": 0 if trial == "a" else 1})
        run_train(cfg, dataset, tokenizer, tmp_path / trial / "train")
        runs = {p.parent for p in (tmp_path / trial / "train" / "tensorboard").rglob("events.out.tfevents.*")}
        assert len(runs) == 1, trial
        scalars = EventAccumulator(str(runs.pop())).Reload()
        assert [e.step for e in scalars.Scalars("train/loss")] == [1, 2, 3, 4]
        assert [e.step for e in scalars.Scalars("eval/loss")][:2] == [2, 4]
        logged = [json.loads(x) for x in (tmp_path / trial / "train" / "metrics.jsonl").read_text().splitlines()]
        assert [e.value for e in scalars.Scalars("train/loss")] == pytest.approx(
            [r["loss"] for r in logged if "loss" in r], rel=1e-6)  # the same numbers as metrics.jsonl
    # nothing of the stage stays behind for the stages after it
    assert "TENSORBOARD_LOGGING_DIR" not in os.environ and torch.get_num_threads() == threads


def reward_accuracy(trainer):
    return trainer.evaluate(trainer.train_dataset)["eval_rewards/accuracies"]


@pytest.mark.parametrize("objective", ["dpo", "orpo"])
def test_preference_objectives_raise_reward_accuracy(tmp_path, objective):
    # ORPO's reward is the answer's mean log-probability, which moves slower than DPO's ratio to a reference
    cfg = config(tmp_path, base_model=None, method="lora", objective=objective,
                 max_steps=30 if objective == "dpo" else 60, learning_rate=5e-3, beta=0.5)
    dataset, tokenizer = data(tmp_path)
    p = prepare(cfg, dataset, tokenizer, tmp_path / "train")
    before = reward_accuracy(p.trainer)
    p.trainer.train()
    after = reward_accuracy(p.trainer)
    assert after >= 0.8 and after >= before + 0.4, (before, after)


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["dpo", "orpo"])
@pytest.mark.parametrize("method", METHODS)
def test_every_method_with_every_preference_objective(tmp_path, method, objective):
    cfg = config(tmp_path, base_model=None, method=method, objective=objective, max_steps=60,
                 learning_rate=5e-3 if method != "full" else 1e-3, beta=0.5)
    dataset, tokenizer = data(tmp_path)
    p = prepare(cfg, dataset, tokenizer, tmp_path / "train")
    before = p.trainer.evaluate(p.trainer.train_dataset)
    p.trainer.train()
    after = p.trainer.evaluate(p.trainer.train_dataset)
    # Chosen answers pull ahead of rejected ones with every method. Not the 0.8 accuracy of the LoRA test above:
    # bitsandbytes' 4-bit kernels differ by instruction set, and QLoRA with DPO reaches 0.65 of the pairs (mean
    # margin 0.71) on an AVX2-only CPU after the 60 steps that bring it past 0.8 on an AVX-512 one.
    assert after["eval_rewards/accuracies"] >= 0.6 and after["eval_rewards/accuracies"] >= before[
        "eval_rewards/accuracies"] + 0.4, (before, after)


def test_a_base_model_learns_its_new_chat_tokens_with_lora_and_nothing_else_of_the_embedding(tmp_path):
    """New ChatML tokens get embedding rows, and with adapters only those rows train."""
    from knowtune.examples.tokenizer import load_pretrained

    base = make_pretrained(tmp_path / "base", chat_template=None)
    original = AutoModelForCausalLM.from_pretrained(base).get_input_embeddings().weight.detach().clone()
    tok = load_pretrained(str(base))
    new = list(range(len(original), len(tok)))
    assert [tok.convert_ids_to_tokens(i) for i in new] == ["<|im_start|>", "<|endoftext|>", "<|im_end|>", "<|pad|>"]
    dataset, tokenizer = make_train_data(tmp_path / "data", tok)
    cfg = config(tmp_path, base_model=str(base), method="lora", max_steps=8)
    out = tmp_path / "train"
    p = prepare(cfg, dataset, tokenizer, out)
    assert any("trainable_tokens" in n for n, q in p.trainer.model.named_parameters() if q.requires_grad)
    embed = p.trainer.model.get_input_embeddings()
    ids = torch.tensor(new)
    with torch.no_grad():
        before = embed(ids).clone()
    p.trainer.train()
    with torch.no_grad():
        after = embed(ids).clone()
    used = [i for i, t in enumerate(new) if tok.convert_ids_to_tokens(t) in ("<|im_start|>", "<|im_end|>")]
    assert all(not torch.equal(before[i], after[i]) for i in used)  # the chat tokens' rows trained
    save_model(p.trainer.model, p.tokenizer, cfg, out)
    merged = AutoModelForCausalLM.from_pretrained(out / "model").get_input_embeddings().weight.detach()
    assert torch.equal(merged[: len(original)], original)  # the old rows: untouched
    assert torch.allclose(merged[ids], after)  # and the merged model has the trained new rows


@pytest.mark.skipif(not __import__("knowtune.hardware", fromlist=["x"]).native_bf16(),
                    reason="this CPU has no native bfloat16: precision auto trains in float32 here")
def test_lora_in_bfloat16_keeps_its_frozen_layers_in_bfloat16_and_saves_a_float32_merge(tmp_path):
    cfg = config(tmp_path, method="lora", max_steps=6, precision="auto")
    dataset, tokenizer = data(tmp_path)
    out = tmp_path / "train"
    p = prepare(cfg, dataset, tokenizer, out)
    params = dict(p.trainer.model.named_parameters())
    assert {v.dtype for n, v in params.items() if n.endswith("base_layer.weight")} == {torch.bfloat16}
    assert {v.dtype for n, v in params.items() if "norm" in n or "embed" in n} == {torch.float32}
    assert {p.dtype for p in p.trainer.model.parameters() if p.requires_grad} == {torch.float32}
    p.trainer.train()
    save_model(p.trainer.model, p.tokenizer, cfg, out)
    merged = AutoModelForCausalLM.from_pretrained(out / "model")
    assert {p.dtype for p in merged.parameters()} == {torch.float32}
    # the adapter on the float32 base, unmerged: what the merge must compute
    from peft import PeftModel

    from knowtune.train.model import load_base

    base, _ = load_base(cfg, p.tokenizer, None, quantised=False)
    adapted = PeftModel.from_pretrained(base, out / "adapter")
    ids = torch.tensor([[5, 17, 33, 2, 9]])
    with torch.no_grad():
        diff = (merged(ids).logits - adapted(ids).logits).abs().max()
    assert diff < 1e-4, diff
    assert json.loads((out / "preflight.json").read_text())["precision"] == "bf16"
