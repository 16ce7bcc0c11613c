"""The TRL trainer for each objective, with the arguments every objective shares.

SFT reads knowtune's own tokenised rows (the loss mask made by
chat.encode_chat) and its packing collator; its loss is the plain
token-averaged cross-entropy of the trained tokens (on packed batches with the
LM head run only where a token is trained), not TRL's fused variant that also
computes entropy and token accuracy over the whole vocabulary every step. DPO and ORPO
read the build stage's preference pairs as conversations and render them with
the run's chat template themselves.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from transformers import Trainer
from trl import SFTTrainer

from ..config import TrainConfig, learning_rate_for
from . import attention
from ..chat import IGNORE
from .lm_loss import fusable_head, fused_lm_loss
from .model import precision_of
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
        activation_checkpointing=cfg.gradient_checkpointing,
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
        report_to=tracking(cfg),
        seed=cfg.seed,
        data_seed=cfg.seed,
        bf16=precision_of(cfg) == "bf16",
        fp16=precision_of(cfg) == "fp16",
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=True,
        dataloader_num_workers=0,
        # every trainable parameter takes part in every step; searching for unused ones costs a graph walk
        ddp_find_unused_parameters=False,
        log_level_replica="error",  # the other processes would repeat the main one's notices
    )


def tracking(cfg: TrainConfig) -> list[str]:
    import importlib.util

    for name in cfg.tracking:  # each backend's package has the backend's name
        if importlib.util.find_spec(name) is None:
            raise ValueError(f"train.tracking: {name} is not installed; pip install {name} "
                             "(or remove it: metrics.jsonl is always written)")
    return list(cfg.tracking)


def tracking_places(cfg: TrainConfig, out: Path) -> dict[str, str]:
    """Where each backend logs, as the environment variables its transformers callback reads when the
    trainer is built (scoped.environ sets them for that moment only, unless the user set them)."""
    places = {}
    if "tensorboard" in cfg.tracking:  # beside the checkpoints, which are deleted after the run, it would go too
        places["TENSORBOARD_LOGGING_DIR"] = str(out / "tensorboard")
    if "mlflow" in cfg.tracking:  # a local store in the run directory
        places["MLFLOW_TRACKING_URI"] = (out / "mlruns").resolve().as_uri()
    return places


class SFT(SFTTrainer):
    """TRL's SFTTrainer on knowtune's rows: flattened packed batches attend example by example (attention.py),
    the LM head runs only where a token is trained, fused with its cross-entropy (lm_loss.py) when the head is a
    plain linear layer, else through `trained_tokens_loss` (the collator asking the model for those logits
    only: `logits_to_keep`); real tokens are counted."""

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
        labels = inputs.pop("labels")
        head = fusable_head(model)
        # Not TRL's compute_loss: it runs the model a second time, with its fused LM head, for entropy and token
        # accuracy over the whole vocabulary, which costs more than the step; and not through the Trainer's
        # compute_loss_func, which TRL deprecates in favour of this override (and which would get the logits,
        # where the fused head needs the hidden states under them).
        if head is not None:
            inputs.pop("logits_to_keep", None)
            with self.accelerator.autocast():  # called directly, the decoder misses the wrapped forward's autocast
                hidden = attention.hf_model(model).get_decoder()(**inputs, use_cache=False).last_hidden_state
            shifted = labels[:, 1:]
            kept = shifted != IGNORE  # position t predicts labels[t + 1]
            with self.accelerator.autocast():
                total = fused_lm_loss(hidden[:, :-1][kept], head.weight, shifted[kept])
            loss = self.scaled(total, int(kept.sum()), num_items_in_batch)
            return (loss, None) if return_outputs else loss
        outputs = model(**inputs, use_cache=False)
        total, count = trained_tokens_loss(outputs, labels)
        loss = self.scaled(total, count, num_items_in_batch)
        return (loss, outputs) if return_outputs else loss

    def scaled(self, total, count: int, num_items_in_batch):
        """As Trainer.compute_loss scales a summed loss: over the whole accumulated batch's tokens when it knows
        them (so accumulation and several processes weigh every token alike), else over this batch's."""
        if num_items_in_batch is None:
            return total / max(1, count)
        loss = total / num_items_in_batch
        if self.args.average_tokens_across_devices:
            loss = loss * (self.accelerator.num_processes // self.get_tp_size())
        return loss


def trained_tokens_loss(outputs, labels) -> tuple:
    """(summed cross-entropy of the trained tokens, their count), from logits the model computed.

    With a flattened batch the collator asked for logits at trained positions only (`logits_to_keep`: position
    t predicts labels[t + 1]); skipping the prompt's and each example's last position saves the LM head's
    largest product (vocabulary x hidden). Otherwise the logits cover every position and are shifted as the
    model's own loss does. The path for heads fused_lm_loss cannot take.
    """
    import torch.nn.functional as F

    logits = outputs.logits
    if logits.shape[1] == labels.shape[1]:  # every position
        logits, targets = logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1)
    else:  # squeeze, not [0]: the gradient of an index is a zero-filled copy of the logits
        logits, targets = logits.squeeze(0), labels[0, 1:][labels[0, 1:] != IGNORE]
    total = F.cross_entropy(logits.float(), targets, ignore_index=IGNORE, reduction="sum")
    return total, int((targets != IGNORE).sum())


class CountingCollator(Collator):
    """Batches that also carry their count of real tokens (a 4D mask does not tell padding apart), and, when
    flattened for a model that takes it, which positions' logits the loss needs."""

    def __init__(self, *args, keep_logits: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.keep_logits = keep_logits

    def __call__(self, features):
        batch = super().__call__(features)
        import torch

        batch["real_tokens"] = torch.tensor(sum(len(f["input_ids"]) for f in features))
        if self.keep_logits and "cu_seq_lens_q" in batch:
            batch["logits_to_keep"] = (batch["labels"][0, 1:] != IGNORE).nonzero().squeeze(1)
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
    keep = "logits_to_keep" in inspect.signature(attention.hf_model(model).forward).parameters
    collator = CountingCollator(tokenizer.pad_token_id, additive=cfg.attention == "eager", flat=kernel is not None,
                                keep_logits=keep)
    return SFT(model=model, args=sft_args, train_dataset=train_ds, eval_dataset=val_ds, processing_class=tokenizer,
               data_collator=collator, callbacks=callbacks, kernel=kernel)


def preference_trainer(model, tokenizer, cfg: TrainConfig, args: dict, train_ds, val_ds, callbacks):
    if cfg.objective == "dpo":
        from trl import DPOConfig, DPOTrainer

        config, trainer = DPOConfig, DPOTrainer
    else:
        from .. import scoped

        # ORPO lives in trl.experimental since TRL 1.0, which says so on import; the run's log says ORPO anyway
        with scoped.quiet("You are importing from 'trl.experimental'"):
            from trl.experimental.orpo import ORPOConfig, ORPOTrainer
        config, trainer = ORPOConfig, ORPOTrainer
    pref_args = config(**args, beta=cfg.beta, max_length=cfg.max_length, include_num_input_tokens_seen="non_padding")
    return trainer(model=model, args=pref_args, train_dataset=train_ds, eval_dataset=val_ds,
                   processing_class=tokenizer, callbacks=callbacks)
