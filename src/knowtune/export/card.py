"""The model card: README.md in the export, with the Hub's YAML metadata, built from what the stages wrote."""

from __future__ import annotations

import json
from pathlib import Path

from ..base_model import BUNDLED

# What the bundled base models are, for the card's metadata (a hub id says it itself)
BASE_MODELS = {"smollm2-135m-instruct": ("HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0")}


def model_card(settings, run_root: Path, checks: dict, has_adapter: bool) -> str:
    base_id, license_ = _base(settings.base_model)
    manifest = lambda stage: _read(run_root / stage / "manifest.json")  # noqa: E731
    ingest, curate, train = manifest("documents"), manifest("dataset"), manifest("train")
    results = _read(run_root / "eval" / "results.json")
    front = ["---", f"license: {license_}", "library_name: transformers", "tags: [knowtune, fine-tuned"
             + (", lora" if has_adapter else "") + (", gguf" if checks else "") + "]"]
    if base_id:
        front.append(f"base_model: {base_id}")
    lines = [*front, "---", "", f"# {settings.name}", "",
             f"Fine-tuned with knowtune from {settings.base_model} on an organisation's own code, docs and history.",
             ""]
    if ingest:
        c = ingest["counts"]
        lines += ["## Data", "", f"{c['documents']} documents ({', '.join(f'{n} {k}' for k, n in c['by_kind'].items())})"
                  f" from {', '.join(c['by_source'])}; {c['skipped']} files skipped; secrets and personal data "
                  "redacted before anything else read them.", ""]
    if curate:
        c = curate["counts"]
        funnel = ", ".join(f"{step}: {n}" for step, n in c.get("dropped_by_step", {}).items())
        lines += [f"Curated to {c['examples']} examples ({c.get('train')} trained, the rest held out to evaluate); "
                  f"dropped by step: {funnel or 'none'}.", ""]
    if train:
        c, cfg = train["counts"], train["config"]
        lines += ["## Training", "", f"{c['method']} ({c['objective']}), {c['steps']} steps, learning rate "
                  f"{c['learning_rate']}, {c['tokens']:,} tokens, max length {cfg['max_length']}, precision "
                  f"{cfg['precision']}; final train loss {c['train_loss']}, validation loss {c['eval_loss']}.", ""]
    if results:
        lines += ["## Evaluation", "", *_tables(results), ""]
    lines += ["## Known limits", "",
              "- Evaluated on questions made from the same corpus; the held-out sets say how far that goes, not "
              "how the model does on questions people will ask.",
              "- A model fine-tuned on a corpus states its facts as of the corpus's date; newer facts need "
              "retraining or retrieval.", ""]
    if settings.base_model.lower() in BUNDLED:
        lines += ["- The base weights were dequantised from a 4-bit GGUF file: fine-tuning started from the "
                  "quantised model, not the original float one.", ""]
    lines += ["## How to run", "", "```", "# transformers",
              "from transformers import AutoModelForCausalLM, AutoTokenizer",
              "model = AutoModelForCausalLM.from_pretrained('merged'); tokenizer = AutoTokenizer.from_pretrained('merged')"]
    if checks:
        served = next((checks[k]["path"] for k in ("q4_k_m", "q8_0", "f16") if k in checks), None)
        lines += ["# llama.cpp", f"llama-server -m {served} --jinja", "# Ollama (the Modelfile holds the chat template)",
                  f"ollama create {settings.name} -f Modelfile && ollama run {settings.name}"]
    lines += ["# vLLM (a GPU)", "vllm serve merged", "```", ""]
    if checks:
        lines += ["GGUF files, each checked with llama.cpp against transformers:", ""]
        for kind, c in checks.items():
            g = c["check"].get("greedy", {})
            lines.append(f"- {c['path']} ({c['megabytes']} MB): tokenisation identical; greedy answers identical for "
                         f"{g.get('identical', 0)} of {g.get('prompts', 0)} prompts")
        lines.append("")
    return "\n".join(lines)


def _tables(results: dict) -> list[str]:
    ways = [w for w in ("base", "base_rag", "tuned", "tuned_rag") if any(w in results.get(s, {}) for s in results)]
    out = ["| questions | " + " | ".join(ways) + " | verdict |", "|---|" + "---|" * (len(ways) + 1)]
    for name in ("knowledge", "paraphrase", "test", "trained", "general"):
        r = results.get(name)
        if not r:
            continue
        metric = "exact_match" if name == "general" else "f1"
        cells = [str(r[w][metric]) if w in r else "-" for w in ways]
        out.append(f"| {name} ({metric.replace('_', ' ')}) | " + " | ".join(cells) + f" | {r['comparison']['verdict']} |")
    return out


def _base(base_model: str) -> tuple[str | None, str]:
    if base_model.lower() in BASE_MODELS:
        return BASE_MODELS[base_model.lower()]
    if base_model == "scratch" or base_model.endswith(".gguf") or Path(base_model).exists():
        return None, "other"
    return base_model, "other"  # a hub id: its own card states its license


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None
