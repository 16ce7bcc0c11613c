"""Checkpoints that survive a kill: only a checkpoint marked complete is ever resumed from.

The trainer writes checkpoint-N (model or adapter, optimiser, scheduler, RNG
states, trainer state with the data position) and then calls `on_save`; the
marker is written there, atomically, so a kill at any point of a save leaves
checkpoint-N unmarked and the previous one in use. The trainer's own rotation
keeps at least two, so the previous one is still on disk when a save is cut.

A checkpoints folder also records which training it belongs to (the settings
that change the weights, and the input hashes); a rerun with any of those
changed starts over instead of resuming a different run.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from transformers import TrainerCallback

from ..records import atomic_write

COMPLETE = "knowtune-complete"
# Settings a resume tolerates: they change what is logged, evaluated, kept on disk or how fast it runs,
# not the weights at a step. (Threads can move the last float bits of a product; a resume is still the
# same training.) Everything else of the train config, the dataset and the tokenizer must be the same.
RESUME_TOLERATES = {"logging_steps", "eval_steps", "save_steps", "save_total_limit", "threads", "tracking"}
IDENTITY = "identity.json"
_STEP = re.compile(r"^checkpoint-(\d+)$")


class SkipFinalSave(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        # The trainer saves a checkpoint after the last step too; the train stage saves the model right
        # after, so that checkpoint (optimiser states: twice the weights) would only be written and deleted.
        # Kept when the best checkpoint is chosen at the end: the last one may be the best.
        last = state.global_step >= state.max_steps
        if last and not args.load_best_model_at_end and state.global_step % state.save_steps:
            control.should_save = False
        return control


class MarkComplete(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            atomic_write(folder / COMPLETE, json.dumps({"step": state.global_step}) + "\n")


def identity(cfg, *inputs: str | None) -> dict:
    """What a checkpoint must share with a rerun to be resumed by it: the settings that change the weights, and
    the hashes of what training reads (dataset, tokenizer, a converted base model)."""
    from ..config import stage_hash

    return {"settings": stage_hash(cfg.model_dump(mode="json", exclude=RESUME_TOLERATES)), "inputs": list(inputs)}


def last_complete(folder: Path) -> Path | None:
    """The newest checkpoint whose save finished, or None."""
    done = [p for p in folder.glob("checkpoint-*") if _STEP.match(p.name) and (p / COMPLETE).is_file()]
    return max(done, key=lambda p: int(_STEP.match(p.name).group(1)), default=None)


def prepare(folder: Path, identity: dict) -> Path | None:
    """The checkpoint to resume from, if `folder` holds one of this same training; else an empty folder."""
    saved = folder / IDENTITY
    same = saved.is_file() and json.loads(saved.read_text()) == identity
    resume = last_complete(folder) if same else None
    if resume is None:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        # unfinished saves newer than the resumed one would confuse the trainer's rotation
        step = int(_STEP.match(resume.name).group(1))
        for p in folder.glob("checkpoint-*"):
            m = _STEP.match(p.name)
            if m and int(m.group(1)) > step:
                shutil.rmtree(p)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(saved, json.dumps(identity, sort_keys=True) + "\n")
    return resume
