"""A run killed with SIGKILL resumes from its last complete checkpoint and ends with the same weights."""

import json
import os
import random
import signal
import time

import pytest
from safetensors.torch import load_file

from conftest import finish, make_pretrained, make_train_data, train_process
from knowtune.examples.tokenizer import load_pretrained
from knowtune.train import checkpoints

def train(cfg, dataset, tokenizer, out, wait=True):
    proc = train_process(cfg, dataset, tokenizer, out)
    return finish(proc) if wait else proc


def weights(out):
    return load_file(out / "model" / "model.safetensors")


@pytest.mark.parametrize("method", [pytest.param("full", marks=pytest.mark.slow), "lora"])  # quick loop: one
def test_a_run_killed_at_a_random_step_resumes_to_the_same_weights(tmp_path, method):
    base = make_pretrained(tmp_path / "base")
    dataset, tokenizer = make_train_data(tmp_path / "data", load_pretrained(str(base)))
    cfg = dict(base_model=str(base), method=method, precision="fp32", max_length=64, batch_size=2, epochs=3, max_steps=30,
               learning_rate=3e-3, eval_steps=3, save_steps=3, logging_steps=1, threads=1,
               lora={"r": 4, "alpha": 8, "dropout": 0.1})  # dropout: the RNG state must come back too
    straight = train(cfg, dataset, tokenizer, tmp_path / "straight")

    out = tmp_path / "killed"
    kill_after = random.Random().randint(4, 24)  # a different step every run; printed when it fails
    proc = train(cfg, dataset, tokenizer, out, wait=False)
    metrics = out / "metrics.jsonl"
    while proc.poll() is None:
        steps = [json.loads(x)["step"] for x in metrics.read_text().splitlines()] if metrics.is_file() else []
        if steps and max(steps) >= kill_after:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before step {kill_after}"
    resumed_from = checkpoints.last_complete(out / "checkpoints")
    assert resumed_from is not None

    counts = train(cfg, dataset, tokenizer, out)
    assert counts["resumed_from_step"] == int(resumed_from.name.split("-")[1]) > 0, kill_after
    assert counts["steps"] == straight["steps"] == 30
    a, b = weights(tmp_path / "straight"), weights(out)
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst <= 1e-6, (kill_after, worst)
    # the curve has each step once: rows logged after the checkpoint and before the kill are replaced
    logged = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()
              if "loss" in json.loads(x)]
    assert logged == sorted(set(logged))


def test_an_unfinished_save_is_never_resumed_from(tmp_path):
    folder = tmp_path / "checkpoints"
    identity = {"settings": "abc"}
    assert checkpoints.prepare(folder, identity) is None
    for step, complete in ((3, True), (6, True), (9, False)):  # the save of step 9 was cut by a kill
        (folder / f"checkpoint-{step}").mkdir()
        if complete:
            (folder / f"checkpoint-{step}" / checkpoints.COMPLETE).write_text("{}")
    assert checkpoints.prepare(folder, identity) == folder / "checkpoint-6"
    assert not (folder / "checkpoint-9").exists()
    # other settings: a different training, which must start over
    assert checkpoints.prepare(folder, {"settings": "xyz"}) is None
    assert list(folder.glob("checkpoint-*")) == []


def test_no_checkpoint_is_written_after_the_last_step_when_the_model_is_saved_next(tmp_path):
    from knowtune.config import TrainConfig
    from knowtune.train.run import prepare

    from conftest import TINY_SHAPE

    tokenizer = load_pretrained(str(make_pretrained(tmp_path / "base")))
    dataset, tokenizer_dir = make_train_data(tmp_path / "data", tokenizer)
    # eval every 2 steps, save every 3: no best checkpoint can be kept, so the last step needs none
    cfg = TrainConfig(model=TINY_SHAPE, precision="fp32", max_length=64, batch_size=2, max_steps=7, eval_steps=2, save_steps=3,
                      save_total_limit=5, threads=1)
    p = prepare(cfg, dataset, tokenizer_dir, tmp_path / "train")
    p.trainer.train()
    assert p.trainer.state.global_step == 7
    assert sorted(c.name for c in (tmp_path / "train" / "checkpoints").glob("checkpoint-*")) == [
        "checkpoint-3", "checkpoint-6"]


def test_a_resume_tolerates_logging_evaluation_and_thread_settings_but_not_what_changes_the_weights(tmp_path):
    from knowtune.config import TrainConfig

    folder = tmp_path / "checkpoints"
    first = TrainConfig(logging_steps=5, eval_steps=10, threads=None)
    assert checkpoints.prepare(folder, checkpoints.identity(first, "data", "tok")) is None
    (folder / "checkpoint-10").mkdir()
    (folder / "checkpoint-10" / checkpoints.COMPLETE).write_text("{}")
    tolerated = TrainConfig(logging_steps=1, eval_steps=3, save_steps=6, threads=2, save_total_limit=4,
                            tracking=["tensorboard"])
    assert checkpoints.prepare(folder, checkpoints.identity(tolerated, "data", "tok")) == folder / "checkpoint-10"
    for changed in (TrainConfig(learning_rate=1e-3), TrainConfig(max_steps=50), TrainConfig(seed=1)):
        kept = TrainConfig(logging_steps=1, eval_steps=3, save_steps=6, threads=2, save_total_limit=4,
                           tracking=["tensorboard"])
        assert checkpoints.identity(changed, "data", "tok") != checkpoints.identity(kept, "data", "tok")
    assert checkpoints.identity(first, "other data", "tok") != checkpoints.identity(first, "data", "tok")
