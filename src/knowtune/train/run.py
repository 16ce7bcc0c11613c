"""The train stage: the curated dataset, tokenised with its loss mask, through TRL's SFTTrainer."""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

from ..config import TrainConfig, learning_rate_for
from ..progress import console, track
from ..records import Example
from .data import encode_example
from .model import count_parameters, load_model
from .callbacks import MetricsCallback, plot_losses

def tokenize_split(tokenizer, examples: list[Example], max_length: int, what: str):
    """A datasets.Dataset of input_ids and labels; examples over max_length were dropped by curate."""
    from datasets import Dataset

    rows = [encode_example(tokenizer, e) for e in track(examples, f"tokenising {what}")]
    rows = [r for r in rows if len(r["input_ids"]) <= max_length]
    return Dataset.from_list(rows) if rows else None


def run_train(cfg: TrainConfig, dataset: Path, tokenizer_dir: Path, out: Path) -> dict:
    import torch
    from transformers import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    from ..build import load_tokenizer
    from ..curate import load_split

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    tokenizer = load_tokenizer(tokenizer_dir)
    # Preference pairs are for DPO and ORPO; SFT already trains their chosen answer through the QA example.
    train_examples = [e for e in load_split(dataset, "train") if e.kind != "preference"]
    if not train_examples:
        raise ValueError(f"{dataset}: the train split is empty; add sources or lower curate.val_share/test_share")
    train_ds = tokenize_split(tokenizer, train_examples, cfg.max_length, "train split")
    val_ds = tokenize_split(tokenizer, [e for e in load_split(dataset, "val") if e.kind != "preference"],
                            cfg.max_length, "val split")
    model = load_model(cfg, tokenizer)

    steps_per_epoch = math.ceil(len(train_ds) / (cfg.batch_size * cfg.grad_accum))
    # max_steps caps the run (a time budget); epochs say how far it would go otherwise.
    total_steps = max(1, math.ceil(steps_per_epoch * cfg.epochs))
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    eval_steps = cfg.eval_steps or max(1, total_steps // 10)
    checkpoints = out / "checkpoints"
    shutil.rmtree(checkpoints, ignore_errors=True)
    (out / "metrics.jsonl").unlink(missing_ok=True)
    args = SFTConfig(
        output_dir=str(checkpoints),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=learning_rate_for(cfg),
        lr_scheduler_type=cfg.scheduler,
        warmup_steps=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay,
        num_train_epochs=cfg.epochs,
        max_steps=total_steps,
        max_length=cfg.max_length,
        logging_steps=cfg.logging_steps,
        eval_strategy="steps" if val_ds is not None else "no",
        eval_steps=eval_steps,
        save_strategy="no",
        report_to=[],
        seed=cfg.seed,
        data_seed=cfg.seed,
        bf16=False,
        fp16=False,
        gradient_checkpointing=False,
        use_cpu=not torch.cuda.is_available(),
        train_sampling_strategy="group_by_length",
        include_num_input_tokens_seen="non_padding",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds, processing_class=tokenizer,
        callbacks=[MetricsCallback(out / "metrics.jsonl")],
    )
    trainer.remove_callback(PrinterCallback)  # metrics go to metrics.jsonl and the live line instead
    console.print(f"train: {count_parameters(model)['parameters'] / 1e6:.1f}M parameters, "
                  f"{len(train_ds)} examples, {total_steps} steps")
    start = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - start
    final_eval = trainer.evaluate() if val_ds is not None else {}

    model_dir = out / "model"
    shutil.rmtree(model_dir, ignore_errors=True)
    trainer.model.generation_config = model.generation_config
    trainer.save_model(str(model_dir))
    tokenizer.save_pretrained(model_dir)
    shutil.rmtree(checkpoints, ignore_errors=True)
    plot_losses(out / "metrics.jsonl", out / "plots" / "loss.png")
    tokens = trainer.state.num_input_tokens_seen
    return {
        **count_parameters(model),
        "steps": trainer.state.global_step,
        "train_loss": round(result.training_loss, 4),
        "eval_loss": round(final_eval.get("eval_loss", float("nan")), 4),
        "tokens": int(tokens),
        "tokens_per_second": round(tokens / seconds, 1),
        "train_seconds": round(seconds, 1),
        "learning_rate": learning_rate_for(cfg),
        "examples": len(train_ds),
    }
