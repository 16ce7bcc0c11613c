"""eval.precision: float32 by default, bfloat16 on request where the machine multiplies it natively."""

from types import SimpleNamespace

import pytest
import torch
from transformers import AutoTokenizer

from knowtune.config import EvalConfig
from knowtune.evaluate import load_model, run_eval
from knowtune.hardware import HardwareError, native_bf16, refuse_emulated_bf16

from conftest import make_pretrained


@pytest.fixture
def bf16_said(monkeypatch):
    """Sets the CPU-detection override for one test (either kind of CPU, on this one) and clears it after."""
    def say(native: str):
        monkeypatch.setenv("KNOWTUNE_BF16", native)
        native_bf16.cache_clear()
    yield say
    monkeypatch.delenv("KNOWTUNE_BF16", raising=False)
    native_bf16.cache_clear()


def test_evaluation_answers_in_float32_unless_told_otherwise(tmp_path):
    folder = make_pretrained(tmp_path / "base")
    assert EvalConfig().precision == "fp32"
    model = load_model(folder, AutoTokenizer.from_pretrained(folder))
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_bf16_loads_bfloat16_weights_where_the_cpu_has_it(tmp_path, bf16_said):
    bf16_said("1")
    refuse_emulated_bf16("eval.precision", "fp32")
    folder = make_pretrained(tmp_path / "base")
    model = load_model(folder, AutoTokenizer.from_pretrained(folder), "bf16")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


def test_bf16_is_refused_before_loading_where_it_would_be_emulated(tmp_path, bf16_said):
    if torch.cuda.is_available():
        pytest.skip("a GPU runs bfloat16 whatever the CPU")
    bf16_said("0")
    with pytest.raises(HardwareError, match="eval.precision: bf16 on this CPU would be emulated.*use fp32"):
        refuse_emulated_bf16("eval.precision", "fp32")
    missing = tmp_path / "missing"  # the stage refuses before it reads any of its inputs
    with pytest.raises(HardwareError, match="eval.precision: bf16"):
        run_eval(SimpleNamespace(eval=EvalConfig(precision="bf16")), *[missing] * 6)
    with pytest.raises(Exception) as err:  # fp32 is not refused: the stage goes on to its (missing) inputs
        run_eval(SimpleNamespace(eval=EvalConfig()), *[missing] * 6)
    assert not isinstance(err.value, HardwareError)
