"""The TRL trainer for each objective, with the arguments every objective shares.

SFT reads knowtune's own tokenised rows (the loss mask made by
chat_template.encode_chat) and its packing collator; its loss is the model's
plain token-averaged cross-entropy, not TRL's fused variant that also computes
entropy and token accuracy over the whole vocabulary every step. DPO and ORPO
read the build stage's preference pairs as conversations and render them with
the run's chat template themselves.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from transformers import Trainer
from trl import SFTTrainer

from ..config import TrainConfig, learning_rate_for
from .packing import Collator


def common_args(cfg: TrainConfig, out: Path, total_steps: int, eval_steps: int, has_val: bool) -> dict[str, Any]:
    import torch

    save_steps = cfg.save_steps or eval_steps
    # The best checkpoint can only be kept when every evaluation has a checkpoint to point at.
    keep_best = has_val and save_steps % eval_steps == 0
    return dict(
        output_dir=str(out / "checkpoints"),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=learning_rate_for(cfg),
        lr_scheduler_type=cfg.scheduler,
        warmup_steps=cfg.warmup_ratio,  # a float under 1 is a share of the steps
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        # TRL turns checkpointing on by default; it costs a third more compute, so only when asked
        gradient_checkpointing=cfg.gradient_checkpointing,
        optim=cfg.optimizer,
        num_train_epochs=cfg.epochs,
        max_steps=total_steps,
        logging_steps=cfg.logging_steps,
        eval_strategy="steps" if has_val else "no",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=max(2, cfg.save_total_limit),  # two, so a save cut by a kill leaves a complete one
        load_best_model_at_end=keep_best,
        metric_for_best_model="eval_loss" if keep_best else None,
        greater_is_better=False if keep_best else None,
        report_to=tracking(cfg, out),
        seed=cfg.seed,
        data_seed=cfg.seed,
        bf16=cfg.precision == "bf16",
        fp16=cfg.precision == "fp16",
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=True,
        dataloader_num_workers=0,
    )


def tracking(cfg: TrainConfig, out: Path) -> list[str]:
    import importlib.util

    for name in cfg.tracking:  # each backend's package has the backend's name
        if importlib.util.find_spec(name) is None:
            raise ValueError(f"train.tracking: {name} is not installed; pip install {name} "
                             "(or remove it: metrics.jsonl is always written)")
    if "tensorboard" in cfg.tracking:  # beside the checkpoints, which are deleted after the run, it would go too
        os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(out / "tensorboard"))
    if "mlflow" in cfg.tracking:
        # a local store in the run directory unless the user points somewhere else
        os.environ.setdefault("MLFLOW_TRACKING_URI", (out / "mlruns").resolve().as_uri())
    return list(cfg.tracking)


class SFT(SFTTrainer):
    """TRL's SFTTrainer on pre-tokenised rows, counting real tokens (packed rows have no 2D mask to count)."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training:
            real = inputs["input_ids"].numel() - inputs["padding"].sum()
            # every process's tokens: the rate is the run's, not one process's
            self.state.num_input_tokens_seen += int(self.accelerator.gather(real.reshape(1)).sum())
        inputs = {k: v for k, v in inputs.items() if k != "padding"}
        return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)


class CountingCollator(Collator):
    def __call__(self, features):
        batch = super().__call__(features)
        import torch

        width = batch["input_ids"].shape[1]
        batch["padding"] = torch.tensor([width - len(f["input_ids"]) for f in features])
        return batch


def sft_trainer(model, tokenizer, cfg: TrainConfig, args: dict, train_ds, val_ds, callbacks):
    from trl import SFTConfig

    sft_args = SFTConfig(
        **args, max_length=None, remove_unused_columns=False,
        # packed rows are nearly all full: shuffled; unpacked ones are batched with others of their length
        train_sampling_strategy="random" if cfg.packing else "group_by_length",
        include_num_input_tokens_seen="no",
    )
    collator = CountingCollator(tokenizer.pad_token_id, additive=cfg.attention == "eager")
    return SFT(model=model, args=sft_args, train_dataset=train_ds, eval_dataset=val_ds, processing_class=tokenizer,
               data_collator=collator, callbacks=callbacks)


def preference_trainer(model, tokenizer, cfg: TrainConfig, args: dict, train_ds, val_ds, callbacks):
    if cfg.objective == "dpo":
        from trl import DPOConfig, DPOTrainer

        config, trainer = DPOConfig, DPOTrainer
    else:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "experimental": ORPO lives in trl.experimental since TRL 1.0
            from trl.experimental.orpo import ORPOConfig, ORPOTrainer
        config, trainer = ORPOConfig, ORPOTrainer
    pref_args = config(**args, beta=cfg.beta, max_length=cfg.max_length, include_num_input_tokens_seen="non_padding")
    return trainer(model=model, args=pref_args, train_dataset=train_ds, eval_dataset=val_ds,
                   processing_class=tokenizer, callbacks=callbacks)
