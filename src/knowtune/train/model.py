"""The model to train: built from a config for `scratch`, else loaded from a hub id or folder;
quantised to 4-bit NF4 for QLoRA; with LoRA or DoRA adapters for the adapter methods."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ..base_model import base_location
from ..chat import stop_ids
from ..config import TrainConfig

ADAPTER_METHODS = ("lora", "dora", "qlora")


from ..hardware import HardwareError  # noqa: F401  (raised here; imported from here by the CLI and tests)


def precision_of(cfg: TrainConfig) -> str:
    """The precision training runs in: `auto` settled by what this machine does fast."""
    import torch

    from ..hardware import native_bf16

    if cfg.precision != "auto":
        return cfg.precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if native_bf16() else "fp32"


def check_hardware(cfg: TrainConfig) -> None:
    """Settings this machine cannot run fail here, before anything loads, with what to use instead."""
    import torch

    from ..hardware import refuse_emulated_bf16

    if cfg.precision == "bf16":
        refuse_emulated_bf16("train.precision", "auto or fp32")
    if torch.cuda.is_available():
        return
    if cfg.precision == "fp16":
        raise HardwareError("train.precision: fp16 mixed precision needs a CUDA GPU and this machine has none; "
                            "use auto or fp32")
    if cfg.attention == "flash_attention_2":
        raise HardwareError("train.attention: flash_attention_2 needs a CUDA GPU and this machine has none; "
                            "use sdpa (packed examples stay isolated by their attention mask)")
    if cfg.optimizer == "paged_adamw_8bit":
        raise HardwareError("train.optimizer: paged_adamw_8bit pages optimizer states through CUDA memory and "
                            "this machine has no GPU; use adamw_torch_fused")


def load_model(cfg: TrainConfig, tokenizer: Any, base_dir: Path | None = None):
    """The base model (quantised for qlora), with adapters for the adapter methods, ready to train."""
    import torch

    check_hardware(cfg)
    model, new_tokens = load_base(cfg, tokenizer, base_dir)
    if cfg.method == "lora" and precision_of(cfg) == "bf16" and not new_tokens:
        frozen_in_bf16(model)
    if cfg.method in ADAPTER_METHODS:
        torch.manual_seed(cfg.seed)
        model = add_adapters(model, cfg, new_tokens)
    elif cfg.gradient_checkpointing:
        model.activation_checkpointing_enable()
    return model


def load_base(cfg: TrainConfig, tokenizer: Any, base_dir: Path | None, quantised: bool = True):
    """(the base model in float32, or 4-bit for qlora when `quantised`, with rows for new tokens; their ids)."""
    import torch

    # Every random draw below (scratch weights, new embedding rows, adapter initialisation) follows the seed:
    # two runs of one config start from the same weights, which exact resume, comparisons and rebuilding the
    # float32 base for a merge rely on.
    torch.manual_seed(cfg.seed)
    quantise = quantised and cfg.method == "qlora"
    if cfg.base_model == "scratch":
        model = build_scratch(cfg, tokenizer)
        if quantise:  # quantisation happens while loading: save the fresh model and load it back
            with tempfile.TemporaryDirectory() as tmp:
                model.save_pretrained(tmp)
                model = _from_pretrained(tmp, cfg, quantise)
    else:
        model = _from_pretrained(base_location(cfg.base_model, base_dir), cfg, quantise)
    vocab = model.get_input_embeddings().weight.shape[0]
    new_tokens = list(range(vocab, len(tokenizer)))
    if new_tokens:
        # New ChatML and pad tokens (see examples/tokenizer.py) need rows of their own, and those rows train.
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    model.generation_config.eos_token_id = stop_ids(tokenizer)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.do_sample = False
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, new_tokens


def frozen_in_bf16(model) -> None:
    """The decoder's linear layers stored in bfloat16, for LoRA under bfloat16 autocast.

    Autocast casts a float32 weight to bfloat16 at every use and caches the copy only for weights that train,
    so with LoRA every frozen layer was copied at every step, forward and backward: 17% of a SmolLM2 step.
    The products see the same bfloat16 values either way. Embeddings, norms and the head stay float32, so
    the residual stream keeps its precision, and the adapters stay float32 (peft casts them), as do the
    weights saved: the merged model is rebuilt from the float32 base (run.save_model).
    """
    import torch

    for module in model.get_decoder().modules():
        if isinstance(module, torch.nn.Linear):
            module.weight.data = module.weight.data.to(torch.bfloat16)
            if module.bias is not None:
                module.bias.data = module.bias.data.to(torch.bfloat16)


def build_scratch(cfg: TrainConfig, tokenizer: Any):
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

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
        attn_implementation=cfg.attention,
    ))
    model.generation_config = GenerationConfig()
    return model


def _from_pretrained(name: str, cfg: TrainConfig, quantise: bool):
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": torch.float32, "attn_implementation": cfg.attention}
    if quantise:
        from transformers import BitsAndBytesConfig

        # NF4 with double quantisation, as the QLoRA paper; computing in bf16 on a GPU, fp32 on a CPU.
        compute = torch.bfloat16 if torch.cuda.is_available() else torch.float32
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute, llm_int8_skip_modules=["lm_head"],
        )
        kwargs["device_map"] = {"": 0 if torch.cuda.is_available() else "cpu"}
    return AutoModelForCausalLM.from_pretrained(name, **kwargs)


def add_adapters(model, cfg: TrainConfig, new_tokens: list[int]):
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if cfg.method == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    elif cfg.gradient_checkpointing:
        model.activation_checkpointing_enable()
        model.enable_input_require_grads()  # frozen embeddings: checkpointed blocks still need a grad path
    lora = cfg.lora
    extra: dict[str, Any] = {}
    if new_tokens:
        # Only the new tokens' rows train, not the whole embedding matrix (peft keeps tied heads in step).
        extra["trainable_token_indices"] = {"embed_tokens": new_tokens}
    peft_config = LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules,
        modules_to_save=lora.modules_to_save or None, use_dora=cfg.method == "dora", task_type="CAUSAL_LM",
        **extra,
    )
    return get_peft_model(model, peft_config)


def count_parameters(model) -> dict[str, int]:
    total = 0
    for p in model.parameters():
        # a 4-bit layer stores two values per byte: count the values, not the bytes
        total += p.numel() * 2 if getattr(p, "quant_state", None) is not None else p.numel()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"parameters": total, "trainable_parameters": trainable}
