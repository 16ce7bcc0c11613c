"""The train stage: the curated dataset through TRL's trainer for the objective, after a preflight
that shows what will be trained and refuses the common mistakes; resumable from its last complete
checkpoint."""

from __future__ import annotations

import json
import math
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from ..config import TrainConfig, learning_rate_for
from ..progress import console, track
from .. import scoped
from ..chat import encode_chat, encode_example, load_tokenizer
from ..records import Example
from ..distributed import barrier, is_main, world_size
from ..base_model import base_location, describe
from ..hardware import torch_threads
from ..runs import read_manifest
from . import checkpoints, preflight
from .callbacks import MetricsCallback, plot_losses
from .model import ADAPTER_METHODS, count_parameters, load_base, load_model, precision_of
from .packing import pack
from .trainers import common_args, preference_trainer, sft_trainer, tracking_places


def encode_rows(tokenizer, examples: list[Example], cfg: TrainConfig, what: str) -> list[dict]:
    rows = [encode_example(tokenizer, e) for e in track(examples, f"tokenising {what}")]
    preflight.check_lengths([len(r["input_ids"]) for r in rows], cfg.max_length, cfg.truncation)
    return [{k: v[: cfg.max_length] for k, v in r.items()} for r in rows]


def sft_dataset(rows: list[dict], cfg: TrainConfig):
    from datasets import Dataset

    if not rows:
        return None
    return Dataset.from_list(pack(rows, cfg.max_length) if cfg.packing else rows)


def preference_dataset(examples: list[Example]):
    from datasets import Dataset

    rows = [{"prompt": e.prompt, "chosen": e.chosen, "rejected": e.rejected} for e in examples]
    return Dataset.from_list(rows) if rows else None


def expected_template(cfg: TrainConfig, base_dir: Path | None) -> str | None:
    """The chat template inference will use when the base model brings its own; None when knowtune sets it."""
    if cfg.base_model == "scratch":
        return None
    from transformers import AutoTokenizer

    from ..chat import with_system_prompt

    own = AutoTokenizer.from_pretrained(base_location(cfg.base_model, base_dir)).chat_template
    if own is None:
        return None
    return with_system_prompt(own, cfg.system_prompt) if cfg.system_prompt else own


@dataclass
class Prepared:
    trainer: object
    tokenizer: object
    resume: Path | None
    params: dict
    examples: int


def prepare(cfg: TrainConfig, dataset: Path, tokenizer_dir: Path, out: Path, base_dir: Path | None = None,
            extra_callbacks: list = ()) -> Prepared:
    """Everything up to the first step: data, preflight (printed, saved, refusals raised), model, trainer.

    `base_dir`: the base stage's folder, where a GGUF base model was converted to."""
    from ..curate import load_split

    tokenizer = load_tokenizer(tokenizer_dir)
    preflight.check_pad(tokenizer)
    preference = cfg.objective in ("dpo", "orpo")

    def split(name: str) -> list[Example]:
        # SFT trains the chosen answer of a preference pair through its QA example already.
        return [e for e in load_split(dataset, name) if (e.kind == "preference") == preference]

    train_examples = split("train") + (split("val") if cfg.train_on_val else [])
    if not train_examples:
        hint = "set build.preference.enabled" if preference else "add sources or lower curate.val_share/test_share"
        raise ValueError(f"{dataset}: the train split has no examples for objective {cfg.objective}; {hint}")
    chat = next((e for e in train_examples if e.messages or e.prompt), None)
    if chat is not None:
        preflight.check_template(tokenizer, expected_template(cfg, base_dir),
                                 chat.messages or (chat.prompt + chat.chosen))
    rows = encode_rows(tokenizer, train_examples, cfg, "train split")
    if preference:
        # encode_rows measured prompt + chosen; TRL would cut a longer rejected answer without a word
        preflight.check_lengths([len(encode_chat(tokenizer, e.prompt + e.rejected)[0]) for e in train_examples],
                                cfg.max_length, cfg.truncation, "preference pairs' prompt + rejected answer")
        train_ds = preference_dataset(train_examples)
        val_ds = None if cfg.train_on_val else preference_dataset(split("val"))
    else:
        val_rows = [] if cfg.train_on_val else encode_rows(tokenizer, split("val"), cfg, "val split")
        train_ds, val_ds = sft_dataset(rows, cfg), sft_dataset(val_rows, cfg)
    with scoped.quiet(scoped.LIBRARIES_ASK_OLD_NAME, category=FutureWarning):
        model = load_model(cfg, tokenizer, base_dir)

    # Under a distributed launch every process takes batch_size rows a step: the global batch is world times that.
    steps_per_epoch = math.ceil(len(train_ds) / (cfg.batch_size * cfg.grad_accum * world_size()))
    # max_steps caps the run (a time budget); epochs say how far it would go otherwise.
    total_steps = max(1, math.ceil(steps_per_epoch * cfg.epochs))
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    eval_steps = cfg.eval_steps or max(1, total_steps // 10)
    params = count_parameters(model)
    longest = cfg.max_length if cfg.packing and not preference else max(len(r["input_ids"]) for r in rows)
    # a preference step runs the chosen and the rejected answer (and DPO a reference model besides)
    memory = preflight.memory_estimate(model, cfg.batch_size * longest * (2 if preference else 1), cfg.optimizer,
                                       cfg.gradient_checkpointing)
    plan = preflight.Plan(len(train_ds), total_steps, cfg.batch_size * cfg.grad_accum * world_size(), cfg.max_length,
                          cfg.optimizer, cfg.gradient_checkpointing, precision_of(cfg),
                          describe(base_dir) if base_dir else None)
    shown = next((r for e, r in zip(train_examples, rows) if e.kind != "raw"), rows[0])
    identity = checkpoints.identity(cfg, *((read_manifest(d) or {}).get("output_hash")
                                           for d in (dataset, tokenizer_dir, base_dir) if d is not None))
    if is_main():
        preflight.report(out, console, tokenizer, shown, params, memory, plan)
        resume = checkpoints.prepare(out / "checkpoints", identity)
        if resume is None:
            (out / "metrics.jsonl").unlink(missing_ok=True)
        else:
            console.print(f"train: resuming from {resume.name}")
    barrier()  # the other processes resume from the checkpoint the main one chose
    resume = checkpoints.last_complete(out / "checkpoints")
    args = common_args(cfg, out, total_steps, eval_steps, val_ds is not None)
    callbacks = [MetricsCallback(out / "metrics.jsonl", resumed_at=_step(resume)), checkpoints.MarkComplete(),
                 checkpoints.SkipFinalSave(), *extra_callbacks]
    build = preference_trainer if preference else sft_trainer
    with scoped.environ(**tracking_places(cfg, out)):  # read by the tracking callbacks as they are made
        with scoped.quiet(scoped.LIBRARIES_ASK_OLD_NAME, category=FutureWarning):
            trainer = build(model, tokenizer, cfg, args, train_ds, val_ds, callbacks)
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # metrics go to metrics.jsonl and the live line instead
    if is_main():
        console.print(f"train: {params['trainable_parameters']:,} of {params['parameters']:,} parameters train "
                      f"({cfg.method}, {cfg.objective}), {len(train_ds)} rows, {total_steps} steps")
    return Prepared(trainer, tokenizer, resume, params, len(train_examples))


def run_train(cfg: TrainConfig, dataset: Path, tokenizer_dir: Path, out: Path, base_dir: Path | None = None,
              callbacks: list = ()) -> dict:
    """`callbacks`: more TrainerCallbacks (the evaluation during training, which the pipeline brings)."""
    # train.threads holds for this stage only: the stages after it (and a sweep's next trial) get torch as it was
    with torch_threads(cfg.threads) if cfg.threads else nullcontext():
        return _train(cfg, dataset, tokenizer_dir, out, base_dir, list(callbacks))


def _train(cfg: TrainConfig, dataset: Path, tokenizer_dir: Path, out: Path, base_dir: Path | None,
           callbacks: list) -> dict:
    p = prepare(cfg, dataset, tokenizer_dir, out, base_dir, callbacks)
    trainer = p.trainer
    start = time.perf_counter()
    with scoped.quiet(scoped.LIBRARIES_ASK_OLD_NAME, category=FutureWarning):
        result = trainer.train(resume_from_checkpoint=str(p.resume) if p.resume else None)
        seconds = time.perf_counter() - start
        final_eval = last_evaluation(trainer)

    if is_main():
        save_model(trainer.model, p.tokenizer, cfg, out, base_dir)
        shutil.rmtree(out / "checkpoints", ignore_errors=True)  # the model is saved; they only served a resume
        plot_losses(out / "metrics.jsonl", out / "plots" / "loss.png")
    barrier()
    tokens = trainer.state.num_input_tokens_seen
    return {
        **p.params,
        "method": cfg.method, "objective": cfg.objective,
        "steps": trainer.state.global_step,
        "resumed_from_step": _step(p.resume),
        "train_loss": round(result.training_loss, 4),
        "eval_loss": round(final_eval.get("eval_loss", float("nan")), 4),
        "tokens": int(tokens),
        "tokens_per_second": round(tokens / seconds, 1),
        "train_seconds": round(seconds, 1),
        "learning_rate": learning_rate_for(cfg),
        "examples": p.examples,
        "rows": len(trainer.train_dataset),
    }


def save_model(model, tokenizer, cfg: TrainConfig, out: Path, base_dir: Path | None = None) -> None:
    """model/: full weights every later stage loads (adapters merged in); adapter/: the adapter alone."""
    import torch

    model_dir = out / "model"
    shutil.rmtree(model_dir, ignore_errors=True)
    shutil.rmtree(out / "adapter", ignore_errors=True)
    generation = model.generation_config
    if cfg.method in ADAPTER_METHODS:
        # peft says it saves the embedding rows too when they were resized: knowtune resized them on purpose
        # (new chat tokens, their rows trained), so that is what the adapter must hold
        with scoped.quiet("Setting `save_embedding_layers` to `True`", category=UserWarning):
            model.save_pretrained(out / "adapter")
        if cfg.method == "qlora":
            merge_4bit_adapters(model)
        elif any(p.dtype != torch.float32 for p in model.get_base_model().get_decoder().parameters()):
            # trained over bfloat16 copies of the frozen layers (model.frozen_in_bf16): the adapter goes into the
            # float32 base instead, so the saved weights lose nothing to the training-time copies
            from peft import PeftModel

            base, _ = load_base(cfg, tokenizer, base_dir, quantised=False)
            model = PeftModel.from_pretrained(base, out / "adapter")
        model = model.merge_and_unload()
        if cfg.method == "qlora":  # every 4-bit layer is float now: the saved config must not say otherwise
            model.hf_quantizer.remove_quantization_config(model)
    model.generation_config = generation
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    (model_dir / "knowtune.json").write_text(json.dumps({"method": cfg.method, "objective": cfg.objective}) + "\n")


def merge_4bit_adapters(peft_model) -> None:
    """Replace each 4-bit layer and its adapter by one float layer: dequantised weight plus adapter delta.

    peft's own merge adds the delta and quantises the sum again, losing most of
    what a small adapter learnt; here the sum stays in float, so the merged model
    computes what the trained 4-bit model did.
    """
    import bitsandbytes as bnb
    import torch
    from peft.tuners.lora import LoraLayer

    model = peft_model.get_base_model()
    for name, module in list(model.named_modules()):
        if not isinstance(module, LoraLayer) or not isinstance(module.get_base_layer(), bnb.nn.Linear4bit):
            continue
        base = module.get_base_layer()
        weight = bnb.functional.dequantize_4bit(base.weight.data, base.weight.quant_state).float()
        for adapter in module.active_adapters:
            weight = weight + module.get_delta_weight(adapter).float()
        linear = torch.nn.Linear(base.in_features, base.out_features, bias=base.bias is not None)
        linear.weight.data = weight
        if base.bias is not None:
            linear.bias.data = base.bias.data.float()
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, linear)


def _step(checkpoint: Path | None) -> int:
    return int(checkpoint.name.split("-")[-1]) if checkpoint else 0


def last_evaluation(trainer) -> dict:
    """The validation metrics of the final weights: the trainer's own when it has just evaluated at the last
    step (a SmolLM2 validation pass takes tens of seconds on a CPU; twice is waste), else a new pass."""
    if trainer.eval_dataset is None:
        return {}
    step = trainer.state.global_step
    logged = [h for h in trainer.state.log_history if "eval_loss" in h]
    if logged and logged[-1].get("step") == step:
        return logged[-1]
    return trainer.evaluate()
