"""The TRL trainer for each objective, with the arguments every objective shares.

SFT reads knowtune's own tokenised rows (the loss mask made by
chat.encode_chat) and its packing collator; its loss is the model's
plain token-averaged cross-entropy (on packed batches with the LM head run only
where a token is trained), not TRL's fused variant that also computes entropy
and token accuracy over the whole vocabulary every step. DPO and ORPO
read the build stage's preference pairs as conversations and render them with
the run's chat template themselves.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from transformers import Trainer
from trl import SFTTrainer

from ..config import TrainConfig, learning_rate_for
from . import attention
from ..chat import IGNORE
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
        # every trainable parameter takes part in every step; searching for unused ones costs a graph walk
        ddp_find_unused_parameters=False,
        log_level_replica="error",  # the other processes would repeat the main one's notices
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
    """TRL's SFTTrainer on knowtune's rows: flattened packed batches attend example by example (attention.py)
    and score only the positions whose next token is trained; the real tokens are counted."""

    def __init__(self, *args, kernel: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.kernel = kernel

    def train(self, *args, **kwargs):
        with attention.using(self.model, self.kernel):
            return super().train(*args, **kwargs)

    def evaluate(self, *args, **kwargs):
        with attention.using(self.model, self.kernel):
            return super().evaluate(*args, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        real = inputs.pop("real_tokens")
        if model.training:  # every process's tokens: the rate is the run's, not one process's
            self.state.num_input_tokens_seen += int(self.accelerator.gather(real.reshape(1)).sum())
        if "cu_seq_lens_q" not in inputs or not self.scores_kept_positions:
            return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)
        return self.kept_positions_loss(model, inputs, return_outputs, num_items_in_batch)

    @functools.cached_property
    def scores_kept_positions(self) -> bool:
        import inspect

        return "logits_to_keep" in inspect.signature(attention.hf_model(self.model).forward).parameters

    def kept_positions_loss(self, model, inputs, return_outputs, num_items_in_batch):
        total, count, outputs = trained_positions_loss(model, inputs)
        # As Trainer.compute_loss with the model's own loss: over the whole accumulated batch when it knows its
        # size (so gradient accumulation and several processes weigh every token alike), else over this batch.
        scaled = self.model_accepts_loss_kwargs and num_items_in_batch is not None
        loss = total / (num_items_in_batch if scaled else max(1, count))
        if scaled and self.args.average_tokens_across_devices:
            loss = loss * (self.accelerator.num_processes // self.get_tp_size())
        return (loss, outputs) if return_outputs else loss


def trained_positions_loss(model, inputs: dict):
    """Summed cross-entropy of a flattened batch with the LM head run only where the next token is trained.

    Prompt tokens and each example's last token are never targets; skipping
    their logits saves the head's largest product (vocabulary x hidden) for
    them, which matters most for the large vocabularies of real models.
    Returns (summed loss, tokens scored, model outputs).
    """
    import torch.nn.functional as F

    labels = inputs["labels"][0]
    kept = (labels[1:] != IGNORE).nonzero().squeeze(1)  # position t predicts labels[t + 1]
    outputs = model(**{k: v for k, v in inputs.items() if k != "labels"}, logits_to_keep=kept, use_cache=False)
    # squeeze, not [0]: the gradient of an index is a zero-filled copy of the logits
    total = F.cross_entropy(outputs.logits.squeeze(0).float(), labels[kept + 1], reduction="sum")
    return total, kept.numel(), outputs


class CountingCollator(Collator):
    """Batches that also carry their count of real tokens (a 4D mask does not tell padding apart)."""

    def __call__(self, features):
        batch = super().__call__(features)
        import torch

        batch["real_tokens"] = torch.tensor(sum(len(f["input_ids"]) for f in features))
        return batch


def sft_trainer(model, tokenizer, cfg: TrainConfig, args: dict, train_ds, val_ds, callbacks):
    from trl import SFTConfig

    sft_args = SFTConfig(
        **args, max_length=None, remove_unused_columns=False,
        # packed rows are nearly all full: shuffled; unpacked ones are batched with others of their length
        train_sampling_strategy="random" if cfg.packing else "group_by_length",
        include_num_input_tokens_seen="no",
    )
    kernel = attention.packed_kernel(model, cfg.attention, cfg.max_length) if cfg.packing else None
    collator = CountingCollator(tokenizer.pad_token_id, additive=cfg.attention == "eager", flat=kernel is not None)
    return SFT(model=model, args=sft_args, train_dataset=train_ds, eval_dataset=val_ds, processing_class=tokenizer,
               data_collator=collator, callbacks=callbacks, kernel=kernel)


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
