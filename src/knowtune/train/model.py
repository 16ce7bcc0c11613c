"""The model to train: built from a config for `scratch`, else loaded from a hub id or folder."""

from __future__ import annotations

from typing import Any

from ..config import TrainConfig
from .chat_template import stop_ids


def load_model(cfg: TrainConfig, tokenizer: Any):
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, LlamaConfig, LlamaForCausalLM

    if cfg.base_model == "scratch":
        torch.manual_seed(cfg.seed)
        shape = cfg.model
        if shape.hidden_size % shape.heads:
            raise ValueError(f"train.model: hidden_size {shape.hidden_size} is not divisible by heads {shape.heads}")
        model = LlamaForCausalLM(LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=shape.hidden_size,
            intermediate_size=shape.intermediate_size,
            num_hidden_layers=shape.layers,
            num_attention_heads=shape.heads,
            num_key_value_heads=shape.heads,
            max_position_embeddings=cfg.max_length,
            tie_word_embeddings=shape.tie_embeddings,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            bos_token_id=None,
        ))
    else:
        model = AutoModelForCausalLM.from_pretrained(cfg.base_model, dtype=torch.float32)
        if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
            # New ChatML and pad tokens (see build/tokenizer.py) need rows of their own.
            model.resize_token_embeddings(len(tokenizer))
    model.generation_config = GenerationConfig(
        eos_token_id=stop_ids(tokenizer), pad_token_id=tokenizer.pad_token_id, do_sample=False,
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def count_parameters(model) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"parameters": total, "trainable_parameters": trainable}
