"""Run by test_train_preflight in a process of its own: train a few steps, print the estimate and the peak.

The peak is the growth of the process's resident memory from just before the model is built to the
highest it reached while training (weights, gradients, optimiser states, activations, and what torch and
the trainer allocate on the side): what a user sees in `top`.
"""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from conftest import make_train_data  # noqa: E402
from knowtune.config import ScratchModel, TrainConfig  # noqa: E402
from knowtune.examples.tokenizer import train_bpe  # noqa: E402
from knowtune.train.run import prepare  # noqa: E402


def resident() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def high_water_mark() -> int:
    """The process's peak resident memory since clear_refs was last written (VmHWM), in bytes."""
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


tmp, hidden, optimizer = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
tokenizer = train_bpe([f"lamp {i} burns red every night in the harbour of the tower" for i in range(200)], 800)
dataset, tokenizer_dir = make_train_data(tmp / "data", tokenizer, n=96)
before = resident()
# The peak from here on, not the process's whole life: a transient peak while libraries were imported (its
# height depends on what the environment asks them to load) is not the training's.
Path("/proc/self/clear_refs").write_text("5")
cfg = TrainConfig(base_model="scratch", precision="fp32", model=ScratchModel(hidden_size=hidden, layers=4, heads=8,
                                                           intermediate_size=3 * hidden),
                  max_length=64, batch_size=8, max_steps=2, optimizer=optimizer, eval_steps=100, save_steps=100)
prepared = prepare(cfg, dataset, tokenizer_dir, tmp / "train")
prepared.trainer.train()
peak = high_water_mark()
estimate = json.loads((tmp / "train" / "preflight.json").read_text())["memory_gib"]
print(json.dumps({"measured_gib": (peak - before) / 2**30, "estimate_gib": estimate}))
