"""What a run is about to do, shown and saved before the first step, and the mistakes it refuses.

The refusals are the bugs fine-tuning users hit most: a pad token equal to
EOS (collators mask padding out of the loss, so EOS is never trained and the
model never stops), a chat template at inference that differs from the one
trained on, and examples longer than max_length silently cut.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..records import atomic_write
from ..chat import DOC_END, IGNORE, render, stop_ids, turn_end_ids


class PreflightError(ValueError):
    """The run would train something other than what the user meant."""


@dataclass
class Plan:
    examples: int  # training rows after packing
    steps: int
    effective_batch: int
    max_length: int
    optimizer: str
    gradient_checkpointing: bool
    precision: str = "fp32"
    base: str | None = None  # where the base weights came from, when that is worth saying (a dequantised GGUF)


def check_pad(tokenizer: Any) -> None:
    pad, stops = tokenizer.pad_token_id, turn_end_ids(tokenizer)
    if pad is None:
        raise PreflightError("the tokenizer has no pad token; add one that is not EOS (knowtune's tokenizer stage "
                             "does this for every model it loads)")
    if pad in stops:
        raise PreflightError(
            f"the pad token {tokenizer.pad_token!r} (id {pad}) is also an end-of-turn token; trainers mask padding "
            "out of the loss, so the model would never learn to stop. Give the tokenizer a separate pad token")


def check_template(train_tokenizer: Any, inference_template: str | None, messages: list[dict]) -> None:
    """The template inference will use must be the trained one, and its prompt must start the trained text."""
    if inference_template is not None and inference_template != train_tokenizer.chat_template:
        raise PreflightError(
            "the chat template used at inference (the base model's tokenizer) differs from the one the training "
            "data is rendered with; rerun the tokenizer stage (knowtune build --force) so both are the same")
    replies = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if not replies:
        return
    prefix = messages[: replies[-1]]
    text = render(train_tokenizer, messages, add_generation_prompt=False)
    prompt = render(train_tokenizer, prefix, add_generation_prompt=True)
    if not text.startswith(prompt):
        raise PreflightError(
            "the chat template renders an inference prompt that is not the start of the trained conversation "
            f"(prompt ends {prompt[-60:]!r}); the model would be asked in a format it was not trained on")


def check_lengths(lengths: list[int], max_length: int, truncation: bool, what: str = "training examples") -> int:
    """How many examples are too long; refuses when truncation is off and any is."""
    over = [n for n in lengths if n > max_length]
    if over and not truncation:
        raise PreflightError(
            f"{len(over)} {what} are longer than train.max_length {max_length} (the longest has "
            f"{max(over)} tokens) and train.truncation is off; raise max_length, lower curate.max_tokens, or set "
            "train.truncation: true to cut them")
    return len(over)


def memory_estimate(model: Any, batch_tokens: int, optimizer: str, checkpointing: bool) -> dict[str, float]:
    """Peak training memory in GiB, by part: a planning number, within tens of percent."""
    cfg = model.config
    weights = grads = states = 0
    for p in model.parameters():
        quantised = getattr(p, "quant_state", None) is not None
        weights += p.numel() * (1 if quantised else p.element_size())  # 4-bit: two values a byte, plus scales
        if p.requires_grad:
            grads += p.numel() * 4
            states += p.numel() * {"sgd": 0, "adafactor": 2}.get(optimizer, 8)  # Adam: two fp32 moments
    hidden = getattr(cfg, "hidden_size", 0)
    layers = getattr(cfg, "num_hidden_layers", 0)
    inter = getattr(cfg, "intermediate_size", 4 * hidden)
    vocab = getattr(cfg, "vocab_size", 0)
    # Per token and layer, fp32: the attention block's inputs, q/k/v/out (5h) and the MLP's three
    # intermediate tensors (3i); SDPA does not keep the score matrix. Checkpointing keeps one layer's worth.
    per_layer = batch_tokens * (5 * hidden + 3 * inter) * 4
    activations = per_layer * (1 if checkpointing else layers) + batch_tokens * hidden * 4 * layers
    logits = batch_tokens * vocab * 4 * 2  # logits and their gradient
    gib = 1024 ** 3
    parts = {"weights": weights, "gradients": grads, "optimizer_states": states, "activations": activations + logits}
    out = {k: round(v / gib, 6) for k, v in parts.items()}
    out["total"] = round(sum(parts.values()) / gib, 6)
    return out


def rendered(tokenizer: Any, row: dict[str, list[int]]) -> tuple[str, str]:
    """(console markup, HTML) of one example: trained tokens bold, masked ones dimmed."""
    from itertools import groupby

    from rich.markup import escape

    markup, page = [], []
    pairs = list(zip(row["input_ids"], row["labels"]))
    for trained, run in groupby(pairs, key=lambda p: p[1] != IGNORE):
        text = tokenizer.decode([t for t, _ in run])
        markup.append(f"[bold green]{escape(text)}[/]" if trained else f"[dim]{escape(text)}[/]")
        page.append(f"<b>{html.escape(text)}</b>" if trained else f"<span class=m>{html.escape(text)}</span>")
    return "".join(markup), "".join(page)


def report(out: Path, console: Any, tokenizer: Any, row: dict, params: dict, memory: dict, plan: Plan) -> dict:
    """Print the preflight and save it as preflight.json and preflight.html in the run directory."""
    specials = {name: {"token": getattr(tokenizer, f"{name}_token"), "id": getattr(tokenizer, f"{name}_token_id")}
                for name in ("bos", "eos", "pad", "unk")}
    stops = {tokenizer.convert_ids_to_tokens(i): i for i in stop_ids(tokenizer)}
    summary = {
        "special_tokens": specials, "stop_tokens": stops, **params, "precision": plan.precision, "base": plan.base,
        "memory_gib": memory, "effective_batch_size": plan.effective_batch, "steps": plan.steps,
        "training_rows": plan.examples, "max_length": plan.max_length,
    }
    markup, page = rendered(tokenizer, row)
    console.print("[bold]preflight[/bold]: one training example (trained tokens [bold green]bold green[/], "
                  "masked ones [dim]dim[/]):")
    console.print(markup, soft_wrap=True)
    named = ", ".join(f"{k}={v['token']!r} ({v['id']})" for k, v in specials.items())
    console.print(f"preflight: special tokens {named}; stops {stops}")
    if tokenizer.pad_token == DOC_END:
        console.print(f"preflight: pad is {DOC_END!r}, the vocabulary's own document-end token (no token added), "
                      "not an end of turn, so every reply still learns to stop")
    if plan.base:
        console.print(f"preflight: base model {plan.base}")
    console.print(f"preflight: training in {plan.precision}")
    parts = ", ".join(f"{k.replace('_', ' ')} {_size(v)}" for k, v in memory.items() if k != "total")
    console.print(
        f"preflight: {params['trainable_parameters']:,} of {params['parameters']:,} parameters train; "
        f"peak memory about {_size(memory['total'])} ({parts}); effective batch {plan.effective_batch}, "
        f"{plan.steps} steps")
    import json

    atomic_write(out / "preflight.json", json.dumps(summary, indent=2, default=str) + "\n")
    atomic_write(out / "preflight.html", (
        "<!doctype html><meta charset=utf-8><title>knowtune preflight</title>"
        "<style>pre{white-space:pre-wrap} b{color:#070;background:#efe} .m{color:#999}</style>"
        f"<p>Trained tokens bold, masked ones grey.</p><pre>{page}</pre>"
        f"<pre>{html.escape(json.dumps(summary, indent=2, default=str))}</pre>\n"))
    return summary


def _size(gib: float) -> str:
    return f"{gib:.2f} GiB" if gib >= 1 else f"{gib * 1024:.1f} MiB"
