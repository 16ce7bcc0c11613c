"""The model a run trained, loaded for serving: on the GPU when there is one, else the CPU."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..chat import stop_ids


def find_model(path: Path) -> Path:
    """A model folder as given, or a run directory's exported model if there is one, else its trained one."""
    if (path / "config.json").is_file():
        return path
    for candidate in (path / "export" / "merged", path / "train" / "model"):
        if (candidate / "config.json").is_file():
            return candidate
    raise FileNotFoundError(f"{path}: no model here (not a model folder, and no export/merged or train/model "
                            "in it); run `knowtune run` first")


def model_name(path: Path) -> str:
    """What clients call the model: the run's name for a run directory, else the folder's name."""
    return path.resolve().name


@dataclass
class Loaded:
    model: Any
    tokenizer: Any  # renders prompts (one thread at a time: see app.Prompts)
    decoder: Any  # the same tokenizer, a second copy, for the engine's thread to decode with
    stops: list[int]
    context: int  # longest prompt + completion, in tokens
    name: str
    greedy_default: bool  # what an absent temperature means: the model's generation_config decides
    temperature: float
    top_p: float


def load(path: Path, name: str | None = None) -> Loaded:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..progress import quiet_libraries

    quiet_libraries()
    folder = find_model(path)
    if torch.cuda.is_available():
        device, dtype = "cuda", torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    else:  # float32: what evaluation measured the model in, and fast on every CPU
        device, dtype = "cpu", torch.float32
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = model.config.get_text_config()
    generation = model.generation_config
    # knowtune's end-of-turn tokens, and whatever else the folder says generation ends at
    eos = generation.eos_token_id
    stops = sorted(set(stop_ids(tokenizer)) | set(eos if isinstance(eos, list) else [eos] if eos is not None else []))
    return Loaded(model=model, tokenizer=tokenizer, decoder=AutoTokenizer.from_pretrained(folder),
                  stops=stops, context=int(config.max_position_embeddings),
                  name=name or model_name(path), greedy_default=not generation.do_sample,
                  temperature=float(generation.temperature or 1.0), top_p=float(generation.top_p or 1.0))
