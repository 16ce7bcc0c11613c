"""Held-out loss of the model, next to the loss of a unigram model of the training split.

The unigram model is the floor any trained model must clear: it knows only how
often each token occurs. Both are measured on the same target tokens.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from ..progress import track
from ..chat import IGNORE


def targets(rows: list[dict]) -> list[int]:
    """The tokens a causal model is scored on: every trained label after the first position."""
    return [t for r in rows for t in r["labels"][1:] if t != IGNORE]


def unigram_loss(train_rows: list[dict], eval_rows: list[dict], vocab_size: int) -> float:
    counts = Counter(targets(train_rows))
    total = sum(counts.values()) + vocab_size  # add-one smoothing: unseen tokens are not impossible
    eval_targets = targets(eval_rows)
    if not eval_targets:
        return float("nan")
    return -sum(math.log((counts[t] + 1) / total) for t in eval_targets) / len(eval_targets)


def model_loss(model: Any, rows: list[dict], batch_size: int, pad_id: int) -> float:
    import torch

    model.eval()
    total, count = 0.0, 0
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for batch in track(batches, "held-out loss"):
        width = max(len(rows[i]["input_ids"]) for i in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            n = len(rows[i]["input_ids"])
            ids[row, :n] = torch.tensor(rows[i]["input_ids"])
            labels[row, :n] = torch.tensor(rows[i]["labels"])
            mask[row, :n] = 1
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        target = labels[:, 1:]
        nll = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=IGNORE, reduction="sum"
        )
        total += nll.item()
        count += int((target != IGNORE).sum())
    return total / count if count else float("nan")
