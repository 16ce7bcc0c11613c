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
    cfg = dict(base_model=str(base), max_length=64, epochs=2, max_steps=6, learning_rate=1e-3, eval_steps=3,
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
