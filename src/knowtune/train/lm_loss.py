"""The LM head and its cross-entropy in one pass over chunks of positions, never the whole logits at once.

With a large vocabulary the head is a large share of a small model's step: SmolLM2's 49,152 tokens make the
logits of 4,096 trained positions a 4096 x 49152 float32 tensor (800 MB), which log-softmax reads and
writes and its backward reads again (measured: 2.3 s for forward and backward of the cross-entropy alone on
two cores, more than the head's matrix products). Here each chunk's logits live only while that chunk is
scored: the forward pass computes the loss and, at once, the gradient of the hidden states (and of the head's
weight when it trains), which the backward pass only scales. The idea is Liger Kernel's fused linear
cross-entropy; written here in plain torch because the CPU needs no kernel of its own for it.
"""

from __future__ import annotations

import torch

from .attention import hf_model

CHUNK = 1024  # positions per chunk: 1024 x 49152 float32 is 200 MB


class _FusedLinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk):
        trains_weight = weight.requires_grad
        # under autocast the head multiplies in the autocast type, as the model's own head would
        dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else hidden.dtype
        w = weight.to(dtype)
        total = torch.zeros((), dtype=torch.float32)
        grad_hidden = torch.empty_like(hidden, dtype=torch.float32)
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32) if trains_weight else None
        with torch.autocast("cpu", enabled=False):
            for start in range(0, hidden.shape[0], chunk):
                h = hidden[start:start + chunk].to(dtype)
                t = targets[start:start + chunk]
                # Softmax in the matmul's type: one pass that keeps each row in cache (accumulating in float32),
                # where float32 log-softmax and its backward make five passes over memory. The gradient goes
                # into a product in that type anyway; the loss, read from the target's probability, is then
                # good to about 0.2% of its value, plenty for a training curve.
                probs = torch.softmax(h @ w.T, dim=-1)
                rows = torch.arange(len(t))
                total += -torch.log(probs[rows, t].float().clamp_min(torch.finfo(torch.float32).tiny)).sum()
                probs[rows, t] -= 1  # d loss / d logits = softmax - one_hot
                grad_hidden[start:start + chunk] = (probs @ w).float()
                if trains_weight:
                    grad_weight += (probs.T @ h).float()
        ctx.save_for_backward(grad_hidden, grad_weight if trains_weight else torch.empty(0))
        ctx.trains_weight = trains_weight
        ctx.hidden_dtype = hidden.dtype
        ctx.weight_dtype = weight.dtype
        return total

    @staticmethod
    def backward(ctx, grad_total):
        grad_hidden, grad_weight = ctx.saved_tensors
        scale = grad_total.float()
        dh = (grad_hidden * scale).to(ctx.hidden_dtype)
        dw = (grad_weight * scale).to(ctx.weight_dtype) if ctx.trains_weight else None
        return dh, dw, None, None


def fused_lm_loss(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int = CHUNK):
    """Summed cross-entropy of `hidden` (n, d) through the head `weight` (vocab, d) against `targets` (n,)."""
    if hidden.shape[0] == 0:
        return hidden.sum() * 0 + weight.sum() * 0
    return _FusedLinearCrossEntropy.apply(hidden, weight, targets, chunk)


def fusable_head(model):
    """The output layer when the loss may run it itself: a plain linear layer (no bias) whose logits the model
    does not change afterwards (Gemma's soft-capping, Cohere's scale), else None."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        # gradients are averaged across processes only through the wrapper's own forward: the loss must go
        # through it, which gives it logits (of the trained positions only), never the decoder's hidden states
        return None
    base = hf_model(model)
    head = base.get_output_embeddings()
    config = base.config.get_text_config()
    plain = type(head) is torch.nn.Linear and head.bias is None
    changed = any(getattr(config, key, None) not in (None, 1, 1.0) for key in ("final_logit_softcapping", "logit_scale"))
    return head if plain and not changed and hasattr(base, "get_decoder") else None
