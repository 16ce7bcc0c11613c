"""Export: the trained model where people run models, each file checked before it is called done.

- merged/: safetensors with the tokenizer, chat template and generation config (plain transformers, vLLM);
- adapter/: the LoRA adapter alone, for an adapter method (vLLM's --lora-modules, peft);
- model-<type>.gguf for each of export.gguf (llama.cpp, Ollama, LM Studio), written by gguf.py and read back
  by llama.cpp itself (gguf_check.py): its tokens, its end of turn, and its greedy answers against
  transformers'; a file whose tokenisation differs is refused;
- Modelfile for Ollama, with the model's own chat template written out (modelfile.py);
- README.md: the model card (card.py), and checks.json with every measurement.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..progress import console
from ..records import write_json
from ..runs import StageError
from .card import model_card
from .modelfile import modelfile

GGUF_NAMES = {"f16": "model-f16.gguf", "q8_0": "model-q8_0.gguf", "q4_k_m": "model-q4_k_m.gguf"}


def run_export(settings, model_dir: Path, run_root: Path, out: Path) -> dict:
    from transformers import AutoTokenizer

    cfg = settings.export
    for stale in (out / "merged", out / "adapter"):
        shutil.rmtree(stale, ignore_errors=True)
    counts: dict = {}
    shutil.copytree(model_dir, out / "merged")
    counts["merged_megabytes"] = _megabytes(out / "merged")
    adapter = model_dir.parent / "adapter"
    if adapter.is_dir():
        shutil.copytree(adapter, out / "adapter")
    checks: dict = {}
    if cfg.gguf:
        checks = write_ggufs(cfg, model_dir, out, settings.name)
        counts["gguf"] = {kind: c["megabytes"] for kind, c in checks.items()}
        counts["tokenisation_identical"] = all(c["check"]["tokenisation"]["identical"] for c in checks.values())
        counts["greedy_identical"] = {kind: f"{c['check']['greedy']['identical']}/{c['check']['greedy']['prompts']}"
                                      for kind, c in checks.items() if "greedy" in c["check"]}
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    served = _served_file(cfg.gguf)
    if served and cfg.modelfile:
        text, said = modelfile(GGUF_NAMES[served], tokenizer, settings.max_length, settings.system_prompt)
        (out / "Modelfile").unlink(missing_ok=True)
        if text:
            (out / "Modelfile").write_text(text)
        counts["modelfile"] = said
    write_json(out / "checks.json", checks)
    (out / "README.md").write_text(model_card(settings, run_root, checks, has_adapter=adapter.is_dir()))
    for line in how_to_run(out, settings.name, served, adapter.is_dir()):
        console.print(line, soft_wrap=True)  # commands to copy: never wrapped
    return counts


def write_ggufs(cfg, model_dir: Path, out: Path, name: str) -> dict:
    from .gguf import GGUFError, quantize_gguf, write_gguf
    from .gguf_check import check_gguf

    checks = {}
    f16 = out / GGUF_NAMES["f16"]
    try:
        write_gguf(model_dir, f16, "f16", name=name)
        for kind in cfg.gguf:
            path = out / GGUF_NAMES[kind]
            if kind != "f16":
                quantize_gguf(f16, path, kind)
            # Greedy parity is a claim about f16; a quantised file answers close to it, not token for token
            report = check_gguf(path, model_dir, greedy=True, new_tokens=cfg.check_tokens,
                                prompts=None if cfg.check_prompts >= 6 else _prompts(cfg.check_prompts))
            checks[kind] = {"path": path.name, "megabytes": _megabytes(path), "check": report}
            if not report["tokenisation"]["identical"]:
                first = (report["tokenisation"]["mismatches"] or [{}])[0]
                path.unlink()
                raise StageError(f"export: llama.cpp tokenises {path.name} differently from the model's tokenizer "
                                 f"(first: {str(first)[:200]}); the file would degrade answers, so it is not kept")
            _say(kind, report)
    except GGUFError as err:
        raise StageError(f"export: {err}") from None
    finally:
        if "f16" not in cfg.gguf:
            f16.unlink(missing_ok=True)
    return checks


def _prompts(n: int) -> list[str]:
    from .gguf_check import PROMPTS

    return PROMPTS[:n]


def _say(kind: str, report: dict) -> None:
    greedy = report.get("greedy", {})
    console.print(f"export: {GGUF_NAMES[kind]}: llama.cpp tokenises as transformers does; greedy answers "
                  f"identical to transformers' for {greedy.get('identical', 0)} of {greedy.get('prompts', 0)} prompts")


def _served_file(kinds: list[str]) -> str | None:
    """The GGUF Ollama gets: Q4_K_M as Ollama users expect, else the smallest written."""
    for kind in ("q4_k_m", "q8_0", "f16"):
        if kind in kinds:
            return kind
    return None


def how_to_run(out: Path, name: str, served: str | None, adapter: bool) -> list[str]:
    lines = [f"export: to run the model elsewhere:",
             f"  transformers: AutoModelForCausalLM.from_pretrained('{out / 'merged'}')",
             f"  vLLM (needs a GPU; unverified here): vllm serve {out / 'merged'}"]
    if adapter:
        lines.append(f"  vLLM with the adapter on its base: vllm serve <base model> --enable-lora "
                     f"--lora-modules {name}={out / 'adapter'}")
    if served:
        lines.append(f"  llama.cpp: llama-server -m {out / GGUF_NAMES[served]} --jinja")
        if (out / "Modelfile").is_file():
            lines.append(f"  Ollama: cd {out} && ollama create {name} -f Modelfile && ollama run {name}")
    lines.append(f"  knowtune: knowtune serve {out.parent}")
    return lines


def _megabytes(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return round(sum(p.stat().st_size for p in files) / 2**20, 1)
