"""Greedy generation in batches, with whether each answer stopped at an end token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..progress import track
from ..chat import prompt_ids, stop_ids


@dataclass
class Generation:
    text: str
    stopped: bool  # ended with an end-of-turn token rather than running out of tokens
    new_tokens: int


def generate(model: Any, tokenizer: Any, conversations: list[list[dict]], max_new_tokens: int,
             batch_size: int, what: str = "generating") -> list[Generation]:
    import torch

    prompts = [prompt_ids(tokenizer, conv) for conv in conversations]
    # Similar lengths together: less padding, same greedy result.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    stops = stop_ids(tokenizer)
    pad = tokenizer.pad_token_id
    results: list[Generation | None] = [None] * len(prompts)
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    model.eval()
    for batch in track(batches, what):
        width = max(len(prompts[i]) for i in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):  # left padding: every prompt ends where generation starts
            ids[row, width - len(prompts[i]):] = torch.tensor(prompts[i])
            mask[row, width - len(prompts[i]):] = 1
        # Never past the positions the model was trained on.
        room = getattr(model.config, "max_position_embeddings", width + max_new_tokens) - width
        with torch.no_grad():
            out = model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=max(1, min(max_new_tokens, room)), do_sample=False,
                eos_token_id=stops, pad_token_id=pad,
            )
        for row, i in enumerate(batch):
            new = out[row, width:].tolist()
            end = next((k for k, t in enumerate(new) if t in stops), None)
            kept = new if end is None else new[:end]
            results[i] = Generation(tokenizer.decode(kept, skip_special_tokens=True), end is not None, len(kept))
    return results  # type: ignore[return-value]
