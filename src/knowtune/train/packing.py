"""Batches for causal-LM training: packed rows where examples cannot see each other, or padded rows.

Packing puts several short examples into one row of up to max_length tokens.
Position ids alone do not keep them apart (transformers' SDPA and eager
attention then let the second example attend to the first), so a packed batch
carries its example bounds in one of two forms: flattened into one sequence
with cumulative lengths (cu_seq_lens, the varlen layout that attention.py's
per-example kernel and flash attention read), or as rows with an explicit
block-diagonal causal 4D mask that transformers passes to attention as it is
(eager attention, and models whose attention is not plain causal). Positions
restart at 0 for every example, so an example's logits equal those it gets alone.
"""

from __future__ import annotations

from typing import Any

from ..chat import IGNORE


def pack(rows: list[dict[str, list[int]]], max_length: int) -> list[dict[str, list[int]]]:
    """First-fit decreasing: longest examples first, each into the first row with room.

    Returns rows with input_ids, labels and seq_lens (the length of each example
    in the row, in order). Deterministic: ties keep the input order.
    """
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i]["input_ids"]))
    bins: list[list[int]] = []
    room: list[int] = []
    for i in order:
        n = len(rows[i]["input_ids"])
        if n > max_length:
            raise ValueError(f"an example of {n} tokens does not fit max_length {max_length}")
        # Scanning the open rows is quadratic in the worst case, but rows fill
        # quickly and the datasets here are thousands of examples, not millions.
        for b, free in enumerate(room):
            if n <= free:
                bins[b].append(i)
                room[b] -= n
                break
        else:
            bins.append([i])
            room.append(max_length - n)
    packed = []
    for members in bins:
        members.sort()
        ids: list[int] = []
        labels: list[int] = []
        for i in members:
            ids += rows[i]["input_ids"]
            # The first token of an example is never predicted when it runs alone; inside a row the token
            # before it belongs to another example, so it must not be predicted here either.
            labels += [IGNORE] + rows[i]["labels"][1:]
        packed.append({"input_ids": ids, "labels": labels, "seq_lens": [len(rows[i]["input_ids"]) for i in members]})
    return packed


class Collator:
    """Pads rows to the longest in the batch; packed rows (with seq_lens) are flattened, or get block-diagonal masks."""

    def __init__(self, pad_id: int, additive: bool = False, flat: bool = False):
        self.pad_id = pad_id
        # Eager attention adds the mask to its scores: it needs 0 and -inf-like floats, not booleans.
        self.additive = additive
        self.flat = flat

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        if self.flat and all("seq_lens" in f for f in features):
            return flatten(features)
        import torch

        width = max(len(f["input_ids"]) for f in features)
        n = len(features)
        ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        labels = torch.full((n, width), IGNORE, dtype=torch.long)
        positions = torch.zeros((n, width), dtype=torch.long)
        packed = any("seq_lens" in f for f in features)
        mask = torch.zeros((n, 1, width, width), dtype=torch.bool) if packed else torch.zeros((n, width), dtype=torch.long)
        for r, f in enumerate(features):
            length = len(f["input_ids"])
            ids[r, :length] = torch.tensor(f["input_ids"])
            labels[r, :length] = torch.tensor(f["labels"])
            if not packed:
                mask[r, :length] = 1
                positions[r, :length] = torch.arange(length)
                continue
            start = 0
            for n_tokens in f.get("seq_lens") or [length]:
                end = start + n_tokens
                mask[r, 0, start:end, start:end] = torch.ones(n_tokens, n_tokens, dtype=torch.bool).tril()
                positions[r, start:end] = torch.arange(n_tokens)
                start = end
            # Padding attends to itself only: a row that attends to nothing gives NaN in SDPA.
            pad = torch.arange(length, width)
            mask[r, 0, pad, pad] = True
        if packed and self.additive:
            mask = torch.zeros(mask.shape).masked_fill(~mask, torch.finfo(torch.float32).min)
        return {"input_ids": ids, "labels": labels, "attention_mask": mask, "position_ids": positions}


def flatten(features: list[dict[str, Any]]) -> dict[str, Any]:
    """Packed rows as one sequence of their examples, no padding: (1, tokens) with cu_seq_lens bounds."""
    import torch

    ids = [t for f in features for t in f["input_ids"]]
    labels = [t for f in features for t in f["labels"]]
    lens = [n for f in features for n in f["seq_lens"]]
    positions = torch.cat([torch.arange(n) for n in lens])
    bounds = torch.tensor([0] + lens, dtype=torch.int32).cumsum(0, dtype=torch.int32)
    return {"input_ids": torch.tensor([ids]), "labels": torch.tensor([labels]), "position_ids": positions[None],
            "cu_seq_lens_q": bounds, "cu_seq_lens_k": bounds, "max_length_q": max(lens), "max_length_k": max(lens)}
