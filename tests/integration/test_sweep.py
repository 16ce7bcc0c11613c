"""A sweep trains every combination of its grid on one dataset; stopped and rerun, it runs only what is left."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import make_repo

CONFIG = """
name: sw
runs_dir: {runs}
sources: [{{type: repo, path: {repo}}}]
build: {{tokenizer: {{vocab_size: 400}}}}
curate: {{semantic_dedup: {{enabled: false}}}}
train: {{model: {{hidden_size: 32, layers: 1, heads: 2, intermediate_size: 64}}, max_length: 128, batch_size: 4,
        max_steps: 20, method: lora, lora: {{r: 4, alpha: 8}}}}
eval: {{knowledge_samples: 2, trained_samples: 2, max_new_tokens: 4}}
sweep: {{train.learning_rate: [0.001, 0.003], train.lora.r: [2, 4]}}
"""


def sweep(cfg, wait=True):
    proc = subprocess.Popen([sys.executable, "-m", "knowtune", "sweep", str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if wait:
        out, _ = proc.communicate(timeout=900)
        assert proc.returncode == 0, out[-3000:]
        return out
    return proc


def finished(root):
    return sorted(p.parent.parent.name for p in root.glob("sweep/*/eval/manifest.json"))


@pytest.mark.slow
def test_a_sweep_of_four_killed_after_two_runs_only_the_other_two(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG.format(runs=tmp_path / "runs", repo=make_repo(tmp_path / "repo", history=False)))
    root = tmp_path / "runs" / "sw"
    proc = sweep(cfg, wait=False)
    while proc.poll() is None and len(finished(root)) < 2:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = finished(root)
    assert done == ["00-learning_rate=0.001_r=2", "01-learning_rate=0.001_r=4"], done
    stamps = {t: json.loads((root / "sweep" / t / "eval" / "manifest.json").read_text())["finished_at"] for t in done}

    out = sweep(cfg)
    assert out.count("train: unchanged, skipped") == 2 and out.count("eval: unchanged, skipped") == 2
    assert len(finished(root)) == 4
    for t, stamp in stamps.items():  # the two finished trials were not run again
        assert json.loads((root / "sweep" / t / "eval" / "manifest.json").read_text())["finished_at"] == stamp
    rows = [json.loads(x) for x in (root / "sweep" / "results.jsonl").read_text().splitlines()]
    assert [(r["train.learning_rate"], r["train.lora.r"]) for r in rows] == [
        (0.001, 2), (0.001, 4), (0.003, 2), (0.003, 4)]
    assert all(r["eval_loss"] > 0 for r in rows)
    table = (root / "sweep" / "results.md").read_text()
    assert table.count("\n| ") == 5 and "(best)" in table  # header and four trials
    # each trial trained with its own settings
    ranks = {t: json.loads((root / "sweep" / t / "train" / "manifest.json").read_text())["config"]["lora"]["r"]
             for t in finished(root)}
    assert ranks == {"00-learning_rate=0.001_r=2": 2, "01-learning_rate=0.001_r=4": 4,
                     "02-learning_rate=0.003_r=2": 2, "03-learning_rate=0.003_r=4": 4}
