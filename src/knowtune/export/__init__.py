"""Export: the trained model as a folder plain transformers loads, chat template included."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..config import ExportConfig


def run_export(cfg: ExportConfig, model_dir: Path, out: Path) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged = out / "merged"
    shutil.rmtree(merged, ignore_errors=True)
    if not cfg.merged:
        return {"merged": False}
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model.save_pretrained(merged, safe_serialization=True)
    tokenizer.save_pretrained(merged)
    size = sum(p.stat().st_size for p in merged.rglob("*") if p.is_file())
    return {"merged": True, "files": len(list(merged.iterdir())), "megabytes": round(size / 2**20, 1)}
