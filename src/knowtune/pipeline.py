"""The stages of a run, in order: what each reads, which settings it depends on, and how to run it."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .config import Config
from .config_file import dump_config
from .distributed import barrier, is_main
from .progress import console, quiet_libraries
from .records import atomic_write
from .runs import RunDir, input_hash, run_stage

# What each command of the CLI runs.
COMMANDS = {
    "ingest": ["ingest"],
    "build": ["base", "tokenizer", "chunk", "examples"],
    "curate": ["curate"],
    "train": ["train"],
    "eval": ["eval"],
    "export": ["export"],
}
ORDER = [stage for stages in COMMANDS.values() for stage in stages]
# Stages every process of a distributed launch runs; the others only the main process runs, once (one
# pseudonym salt, one dataset), while the rest wait for it.
EVERY_PROCESS = {"train"}


@dataclass
class Stage:
    name: str
    settings: Any  # what the stage's manifest hashes, and what its function receives: the same value
    upstream: list[str]  # stages whose outputs it reads
    run: Callable[[Any], dict]  # called with `settings`; it closes over folders only, never over the config
    exclude: tuple[str, ...] = ()  # output subfolders not part of the artifact (checkpoints)


def lazy(module: str, name: str) -> Callable:
    """`module.name`, imported at its first call."""
    def call(*args):
        return getattr(importlib.import_module(module, __package__), name)(*args)
    return call


def stages(cfg: Config, run: RunDir) -> dict[str, Stage]:
    from .settings import stage_settings

    # Each stage's code is imported when it runs: `knowtune --help` should not wait for torch, and an ingest
    # should not hold half a gigabyte of libraries it never calls.
    run_ingest, run_base = lazy(".sources", "run_ingest"), lazy(".base_model", "run_base")
    run_tokenizer, run_chunk = lazy(".examples", "run_tokenizer"), lazy(".examples", "run_chunk")
    run_examples, run_curate = lazy(".examples", "run_examples"), lazy(".curate", "run_curate")
    run_train, during_training = lazy(".train", "run_train"), lazy(".evaluate.during", "during_training")
    run_eval, run_export = lazy(".evaluate", "run_eval"), lazy(".export", "run_export")

    d = run.stage
    s = stage_settings(cfg)
    return {stage.name: stage for stage in [
        Stage("ingest", s["ingest"], [], lambda x: run_ingest(x, d("ingest"))),
        Stage("base", s["base"], [], lambda x: run_base(x, d("base"))),
        Stage("tokenizer", s["tokenizer"], ["base", "ingest"] if s["tokenizer"].base_model == "scratch" else ["base"],
              lambda x: run_tokenizer(x, d("ingest"), d("base"), d("tokenizer"))),
        Stage("chunk", s["chunk"], ["ingest", "tokenizer"], lambda x: run_chunk(x, d("ingest"), d("tokenizer"), d("chunk"))),
        Stage("examples", s["examples"], ["ingest", "chunk"],  # cache/: the teacher's replies, kept across reruns
              lambda x: run_examples(x, d("ingest"), d("chunk"), d("examples")), exclude=("cache",)),
        Stage("curate", s["curate"], ["examples", "tokenizer"],
              lambda x: run_curate(x, d("examples"), d("tokenizer"), d("curate")),
              # Not what later stages read: timings and pids, and reasons that quote the settings.
              exclude=("cache", "log.txt", "excluded.jsonl")),
        Stage("train", s["train"], ["curate", "tokenizer", "base"],
              lambda x: run_train(x, d("curate"), d("tokenizer"), d("train"), d("base"),
                                  during_training(x, d("curate"), d("tokenizer"), d("train"))),
              exclude=("checkpoints",)),
        Stage("eval", s["eval"], ["curate", "train", "base", "tokenizer", "chunk"],
              lambda x: run_eval(x, d("curate"), d("train") / "model", d("base"), d("tokenizer"), d("chunk"),
                                 d("eval")), exclude=("cache",)),
        Stage("export", s["export"], ["train", "eval"],
              lambda x: run_export(x, d("train") / "model", run.root, d("export"))),
    ]}


def with_base(names: list[str], plan: dict[str, Stage]) -> list[str]:
    """`names` with the base stage first when one of them reads it: it depends only on the config, so a
    command such as `knowtune curate` or a dry run never stops at "no finished base stage"; when it has run
    with the same settings it is skipped in a moment."""
    if "base" in names or not any("base" in plan[name].upstream for name in names):
        return names
    return ["base", *names]


def run_stages(cfg: Config, names: list[str], force: bool = False) -> RunDir:
    run = RunDir(cfg.run_dir)
    run.root.mkdir(parents=True, exist_ok=True)
    if is_main():
        atomic_write(run.config_file, dump_config(cfg))
    plan = stages(cfg, run)
    quiet_libraries()
    for name in with_base(names, plan):
        stage = plan[name]
        if name not in EVERY_PROCESS and not is_main():
            barrier()  # under a distributed launch the main process runs it; this one reads what it wrote
            continue
        if name == "ingest":
            from .sources import fingerprint

            inputs = {"sources": fingerprint(stage.settings.sources)}
        elif name == "base":
            from .base_model import fingerprint

            inputs = {"file": fingerprint(stage.settings.base_model)}
        else:
            inputs = {up: input_hash(run.stage(up), up) for up in stage.upstream}
        run_stage(name, run.stage(name), stage.settings, inputs, stage.run, console, force, stage.exclude)
        if name not in EVERY_PROCESS:
            barrier()
    return run


def report(cfg: Config, run: RunDir) -> tuple[Path, Path]:
    from .report import write_report

    return write_report(run, cfg.name, cfg.eval.shown_generations)


def dry_run(cfg: Config, force: bool = False) -> dict:
    """Ingest and chunk as usual, then estimate what teacher generation would send and cost."""
    from .examples import teacher_dry_run

    run = run_stages(cfg, ["ingest", "tokenizer", "chunk"], force)
    return teacher_dry_run(cfg.build, run.stage("ingest"), run.stage("chunk"), run.stage("tokenizer"),
                           run.stage("examples"))
