"""Sweeps through an Optuna study on disk: stopped and rerun (by two workers at once) they run only what is left;
random and TPE sample ranges; the best setting retrains on train + val."""

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
curate: {{semantic_dedup: {{enabled: false}}, knowledge_share: 0.5}}
train: {{model: {{hidden_size: 32, layers: 1, heads: 2, intermediate_size: 64}}, precision: fp32, max_length: 128, batch_size: 4,
        max_steps: 20, method: lora, lora: {{r: 4, alpha: 8}}}}
eval: {{knowledge_samples: 4, trained_samples: 2, max_new_tokens: 4, general_samples: 4, paraphrase_samples: 2, test_samples: 2}}
sweep: {sweep}
"""
GRID = "{space: {train.learning_rate: [0.001, 0.003], train.lora.r: [2, 4]}, stale_after: 2}"


def write_config(tmp_path, sweep):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG.format(runs=tmp_path / "runs", repo=make_repo(tmp_path / "repo", history=False),
                                 sweep=sweep))
    return cfg


def start(cfg):
    return subprocess.Popen([sys.executable, "-m", "knowtune", "sweep", str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def finish(proc):
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-3000:]
    return out


def finished(root):
    return sorted(p.parent.parent.name for p in root.glob("sweep/*/eval/manifest.json"))


def started(out):
    return [line.split(" ", 3)[3] for line in out.splitlines() if line.startswith("sweep: trial ")]


@pytest.mark.slow
def test_a_grid_of_four_killed_after_two_is_finished_by_two_workers_running_only_the_other_two(tmp_path):
    cfg = write_config(tmp_path, GRID)
    root = tmp_path / "runs" / "sw"
    proc = start(cfg)
    while proc.poll() is None and len(finished(root)) < 2:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # the third trial, started or not, dies with it
    proc.wait()
    done = finished(root)
    assert len(done) == 2, done
    stamps = {t: json.loads((root / "sweep" / t / "eval" / "manifest.json").read_text())["finished_at"] for t in done}
    time.sleep(3)  # past stale_after: the killed trial's heartbeat has stopped

    workers = [start(cfg), start(cfg)]
    outs = [finish(w) for w in workers]
    ran = [name for out in outs for name in started(out)]
    assert len(ran) == len(set(ran)), outs  # no trial twice
    assert set(ran) - set(done) == set(finished(root)) - set(done), outs  # the other two
    # A kill between a trial's eval manifest and the study's record of it leaves that trial to run again;
    # its stages are then unchanged, and skipped (the finished_at stamps below stay the same).
    for out in outs:
        for part in out.split("sweep: trial ")[1:]:
            if part.splitlines()[0].split(" ", 1)[1] in done:
                assert "train: unchanged, skipped" in part and "eval: unchanged, skipped" in part, part
    assert all(started(out) for out in outs), "both workers took a trial"
    assert len(finished(root)) == 4
    for t, stamp in stamps.items():  # the two finished trials were not run again
        assert json.loads((root / "sweep" / t / "eval" / "manifest.json").read_text())["finished_at"] == stamp

    rows = [json.loads(x) for x in (root / "sweep" / "results.jsonl").read_text().splitlines()]
    assert sorted((r["train.learning_rate"], r["train.lora.r"]) for r in rows) == [
        (0.001, 2), (0.001, 4), (0.003, 2), (0.003, 4)]
    losses = [r["val_loss"] for r in rows]
    assert losses == sorted(losses) and losses[0] > 0  # ranked, lowest validation loss first
    assert not any(k.startswith("test_") for r in rows for k in r)  # test results cannot choose
    table = (root / "sweep" / "results.md").read_text()
    assert table.count("\n| ") == 5 and f"**{rows[0]['trial']}** (best)" in table
    assert (root / "sweep" / "plot.png").stat().st_size > 1000
    ranks = {t: json.loads((root / "sweep" / t / "train" / "manifest.json").read_text())["config"]["lora"]["r"]
             for t in finished(root)}
    assert ranks == {t: int(t.rsplit("=", 1)[1]) for t in finished(root)}  # each trained with its own setting
    # run once more: nothing is left, nothing runs
    assert started(finish(start(cfg))) == []


@pytest.mark.slow
def test_tpe_samples_ranges_ranks_by_knowledge_and_retrains_the_best_on_train_and_val(tmp_path):
    sweep = ("{space: {train.learning_rate: {low: 0.0005, high: 0.01, log: true}, train.lora.r: {low: 2, high: 8}}, "
             "sampler: tpe, trials: 3, metric: knowledge_f1, retrain: true}")
    cfg = write_config(tmp_path, sweep)
    root = tmp_path / "runs" / "sw"
    out = finish(start(cfg))
    assert len(started(out)) == 3
    rows = [json.loads(x) for x in (root / "sweep" / "results.jsonl").read_text().splitlines()]
    trials, best = rows[:3], rows[3]
    for r in trials:
        assert 0.0005 <= r["train.learning_rate"] <= 0.01 and isinstance(r["train.lora.r"], int)
        assert 2 <= r["train.lora.r"] <= 8
    scores = [r["knowledge_f1"] for r in trials]
    assert scores == sorted(scores, reverse=True)  # highest first
    assert best["trial"] == "best, on train + val"
    assert (best["train.learning_rate"], best["train.lora.r"]) == (trials[0]["train.learning_rate"],
                                                                   trials[0]["train.lora.r"])
    retrained = json.loads((root / "sweep" / "best" / "train" / "manifest.json").read_text())
    assert retrained["config"]["train_on_val"] is True
    evaluated = json.loads((root / "sweep" / "best" / "eval" / "manifest.json").read_text())
    assert evaluated["config"]["eval"]["knowledge_questions"] == "report"
    # the retraining saw the val examples: more examples than any trial
    trial_examples = json.loads((root / "sweep" / trials[0]["trial"] / "train" / "manifest.json").read_text())
    assert retrained["counts"]["examples"] > trial_examples["counts"]["examples"]
    assert "trained again on train + val" in (root / "sweep" / "results.md").read_text()
