"""Attention for packed batches: every example attends within itself only, one example at a time.

A packed batch arrives flattened into one sequence with the example bounds in
cu_seq_lens_q (the varlen layout flash attention takes on a GPU). On the CPU
there is no varlen kernel, and a block-diagonal mask makes SDPA compute every
row's full scores and discard the blocks between examples; running SDPA's
causal kernel on each example's slice does only the useful part (measured on
the training-speed benchmark: 10-15% more tokens a second than the 4D mask,
same loss). Models whose attention is not plain causal (sliding windows, logit
soft-capping) keep the 4D mask, which transformers builds correctly for them.
"""

from __future__ import annotations

from contextlib import contextmanager

NAME = "knowtune_segments"


def segment_attention(module, query, key, value, attention_mask, cu_seq_lens_q=None, **kwargs):
    """query, key, value: (1, heads, tokens, head_dim); returns (1, tokens, heads, head_dim) as transformers expects."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if cu_seq_lens_q is None:
        raise ValueError(f"attention {NAME} runs on packed batches from knowtune's collator (cu_seq_lens_q missing); "
                         "outside training the model uses its own attention")
    lengths = cu_seq_lens_q.diff().tolist()
    dtype = value.dtype  # what autocast would make the output (rotary may have left query and key in float32)
    if query.device.type == "cpu" and torch.bfloat16 in (query.dtype, key.dtype, value.dtype):
        # The CPU's flash kernel is slower in bfloat16 than in float32 on examples this short (measured on
        # SmolLM2's shape, forward and backward: 25 ms a layer against 19), and more exact in float32
        query, key, value = query.float(), key.float(), value.float()
    # split, not slicing: the gradient of a slice is a zero-filled tensor of the whole batch per example,
    # the gradient of a split one concatenation
    parts = zip(query.split(lengths, dim=2), key.split(lengths, dim=2), value.split(lengths, dim=2))
    # transformers' SDPA call without a mask: its causal kernel, grouped heads and checks
    with torch.autocast("cpu", enabled=False):
        outputs = [sdpa_attention_forward(module, q, k, v, None, **kwargs)[0] for q, k, v in parts]
    return torch.cat(outputs, dim=1).to(dtype), None


def _register() -> None:
    from transformers import AttentionInterface

    # No mask function is registered on purpose: transformers then builds no mask for this implementation.
    AttentionInterface.register(NAME, segment_attention)


def hf_model(model):
    """The transformers model under a peft wrapper."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def packed_kernel(model, attention: str, max_length: int) -> str | None:
    """The implementation that runs flattened packed batches for this model, or None when they need a 4D mask."""
    if attention == "flash_attention_2":
        return attention  # transformers' flash path reads cu_seq_lens itself
    if attention != "sdpa":
        return None
    base = hf_model(model)
    can_set = getattr(base, "_can_set_attn_implementation", None)
    if can_set is None or not can_set():
        return None
    config = base.config.get_text_config()
    window = getattr(config, "sliding_window", None)
    windowed = window is not None and window < max_length and getattr(config, "use_sliding_window", True)
    capped = getattr(config, "attn_logit_softcapping", None) is not None
    return None if windowed or capped else NAME


@contextmanager
def using(model, kernel: str | None):
    """The model attends with `kernel` inside the block and with its own implementation again after it."""
    base = hf_model(model)
    before = base.config._attn_implementation
    if kernel is None or kernel == before:
        yield
        return
    _register()
    base.set_attn_implementation(kernel)
    try:
        yield
    finally:
        base.set_attn_implementation(before)
