"""Two CPU processes (gloo) train to the weights one process reaches with the same global batch."""

import socket
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from conftest import finish, make_pretrained, make_train_data, train_process
from knowtune.examples.tokenizer import load_pretrained

CPU_CONFIG = Path(__file__).parents[2] / "configs" / "accelerate" / "cpu_2proc.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one_with_the_same_global_batch(tmp_path):
    base = make_pretrained(tmp_path / "base")
    dataset, tokenizer = make_train_data(tmp_path / "data", load_pretrained(str(base)))
    cfg = dict(base_model=str(base), precision="fp32", max_length=64, epochs=2, max_steps=6, learning_rate=1e-3, eval_steps=3,
               logging_steps=1, threads=1)
    one = finish(train_process({**cfg, "batch_size": 4}, dataset, tokenizer, tmp_path / "one"))
    # the shipped two-process config, under accelerate's own launcher
    launch = (str(Path(sys.executable).parent / "accelerate"), "launch", "--config_file", str(CPU_CONFIG),
              "--main_process_port", str(free_port()))
    two = finish(train_process({**cfg, "batch_size": 2}, dataset, tokenizer, tmp_path / "two", launch))
    assert one["steps"] == two["steps"] == 6
    assert one["tokens"] == two["tokens"]  # counted over both processes
    # one process speaks for the run: its summary line once, not once per process
    assert two["printed"].count("parameters train (full, sft)") == 1, two["printed"]
    # bitsandbytes' complaint that it cannot fetch a CPU kernel from the hub is silenced
    assert "kernels-community" not in two["warned"], two["warned"][-2000:]
    initial = load_file(next((base).glob("*.safetensors")))
    a, b = load_file(tmp_path / "one" / "model" / "model.safetensors"), load_file(
        tmp_path / "two" / "model" / "model.safetensors")
    moved = max(float((a[k] - initial[k]).abs().max()) for k in a if k in initial)
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert moved > 1e-3 and worst < 1e-5, (moved, worst)


@pytest.mark.slow
def test_under_a_distributed_launch_only_the_main_process_runs_the_data_stages(tmp_path):
    import json
    import os
    import subprocess

    from conftest import make_repo
    from fake_openai import FakeOpenAI

    repo = make_repo(tmp_path / "repo")
    cfg = tmp_path / "cfg.yaml"
    launch = [str(Path(sys.executable).parent / "accelerate"), "launch", "--config_file", str(CPU_CONFIG),
              "--main_process_port", str(free_port()), "-m", "knowtune"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    with FakeOpenAI(delay=0.2) as teacher:
        cfg.write_text(f"name: d\nruns_dir: {tmp_path / 'runs'}\nsources:\n  - {{type: docs, path: {repo / 'docs'}}}\n"
                       f"build: {{tokenizer: {{vocab_size: 600}}, teacher: {{base_url: '{teacher.url}', model: t}}}}\n"
                       "curate: {semantic_dedup: {enabled: false}}\n")
        for command, said in (("ingest", "ingest: skipped 1"), ("build", "examples: done"),
                              ("curate", "curate: exact_dedup:")):
            proc = subprocess.run([*launch, command, str(cfg)], capture_output=True, text=True, env=env,
                                  timeout=600)
            assert proc.returncode == 0, proc.stderr[-3000:]
            # what the stage itself prints as it works (a skipped file, a curation step) is said once
            assert proc.stdout.count(said) == 1, proc.stdout
        chunks = (tmp_path / "runs" / "d" / "chunks" / "chunks.jsonl").read_text().splitlines()
        # the teacher is asked once per chunk, not once per process: nobody pays twice
        assert len([r for r in teacher.requests if r["kind"] == "qa"]) == len(chunks)
    assert len(list((tmp_path / "runs").rglob("pseudonym.salt"))) == 1
    examples = [json.loads(x) for x in (tmp_path / "runs" / "d" / "examples" / "examples.jsonl").read_text().splitlines()]
    assert any(e["metadata"].get("rule") == "teacher" for e in examples)
