"""Which process this is when training runs under `accelerate launch` or torchrun.

Every process trains; only the main one writes files (manifests, checkpoints' markers, the model, the
preflight), so several processes never race on one path.
"""

from __future__ import annotations

import os


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    """Wait for every process (nothing to wait for when there is one)."""
    if world_size() > 1:
        import torch
        from accelerate import PartialState

        # Without cpu=True, accelerate on a machine with no GPU sets up no process group and waits for nobody.
        PartialState(cpu=not torch.cuda.is_available()).wait_for_everyone()
