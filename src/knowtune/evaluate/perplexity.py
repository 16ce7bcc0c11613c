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


def unigram_counts(train_rows: list[dict]) -> Counter:
    return Counter(targets(train_rows))


def unigram_loss(counts: Counter, eval_rows: list[dict], vocab_size: int) -> float:
    total = sum(counts.values()) + vocab_size  # add-one smoothing: unseen tokens are not impossible
    eval_targets = targets(eval_rows)
    if not eval_targets:
        return float("nan")
    return -sum(math.log((counts[t] + 1) / total) for t in eval_targets) / len(eval_targets)


def row_losses(model: Any, rows: list[dict], batch_size: int, pad_id: int, chunk: int = 0) -> list[tuple[float, int]]:
    """Each row's (summed negative log-likelihood of its trained tokens, their count), in the rows' order.

    The output layer runs only where a token is scored, a chunk of positions at a time, when it is a plain
    linear layer (lm_loss.fusable_head): the full logits of a batch (16 rows x 512 positions x SmolLM2's
    49,152 tokens, 1.6 GB in float32) were most of the stage's memory and a large share of its time."""
    import torch
    import torch.nn.functional as F

    from ..train.attention import hf_model
    from ..train.lm_loss import CHUNK, fusable_head

    chunk = chunk or CHUNK

    model.eval()
    head = fusable_head(model)
    out: list[tuple[float, int]] = [(0.0, 0)] * len(rows)
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
        target = labels[:, 1:]
        kept = target != IGNORE  # position t predicts labels[t + 1]
        with torch.no_grad():
            if head is not None:
                hidden = hf_model(model).get_decoder()(input_ids=ids, attention_mask=mask,
                                                        use_cache=False).last_hidden_state[:, :-1][kept]
                nll = torch.cat([F.cross_entropy((h @ head.weight.T).float(), t, reduction="none")
                                 for h, t in zip(hidden.split(chunk), target[kept].split(chunk))])
            else:
                logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1][kept].float()
                nll = F.cross_entropy(logits, target[kept], reduction="none")
        per_row = torch.zeros(len(batch), dtype=torch.float64).index_add_(
            0, kept.nonzero()[:, 0], nll.double())
        for row, i in enumerate(batch):
            out[i] = (float(per_row[row]), int(kept[row].sum()))
    return out


def mean_loss(losses: list[tuple[float, int]]) -> float:
    count = sum(n for _, n in losses)
    return sum(total for total, _ in losses) / count if count else float("nan")
