"""The stages of a run, in order: what each reads, which settings it depends on, and how to run it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .config import Config
from .config_file import dump_config
from .distributed import is_main
from .progress import console, quiet_libraries
from .records import atomic_write
from .runs import RunDir, input_hash, run_stage

# What each command of the CLI runs.
COMMANDS = {
    "ingest": ["ingest"],
    "build": ["tokenizer", "chunk", "examples"],
    "curate": ["curate"],
    "train": ["train"],
    "eval": ["eval"],
    "export": ["export"],
}
ORDER = [stage for stages in COMMANDS.values() for stage in stages]


@dataclass
class Stage:
    name: str
    settings: Any  # what the stage's config hash covers
    upstream: list[str]  # stages whose outputs it reads
    run: Callable[[], dict]
    exclude: tuple[str, ...] = ()  # output subfolders not part of the artifact (checkpoints)


def stages(cfg: Config, run: RunDir) -> dict[str, Stage]:
    # Imports inside: `knowtune --help` should not wait for torch.
    from .examples import run_chunk, run_examples, run_tokenizer
    from .examples.stage import CACHE, prompt_settings
    from .curate import run_curate
    from .evaluate import run_eval
    from .export import run_export
    from .sources import run_ingest
    from .train import run_train

    d = run.stage
    b = cfg.build
    examples_settings = {
        **b.model_dump(mode="json", include={"raw", "instructions", "qa", "teacher", "judge", "preference"}),
        "prompts": prompt_settings(b),
    }
    return {s.name: s for s in [
        Stage("ingest", {"sources": [s.model_dump(mode="json") for s in cfg.sources], **cfg.ingest.model_dump()},
              [], lambda: run_ingest(cfg.sources, cfg.ingest, d("ingest"))),
        Stage("tokenizer", {"base_model": cfg.train.base_model, "system_prompt": cfg.train.system_prompt,
                            **b.tokenizer.model_dump()},
              ["ingest"] if cfg.train.base_model == "scratch" else [],
              lambda: run_tokenizer(cfg.train.base_model, b.tokenizer, d("ingest"), d("tokenizer"),
                                    cfg.train.system_prompt)),
        Stage("chunk", {"chunk_tokens": b.chunk_tokens, "chunk_overlap": b.chunk_overlap}, ["ingest", "tokenizer"],
              lambda: run_chunk(b.chunk_tokens, b.chunk_overlap, d("ingest"), d("tokenizer"), d("chunk"))),
        Stage("examples", examples_settings, ["ingest", "chunk"],
              lambda: run_examples(b, d("ingest"), d("chunk"), d("examples")), exclude=(CACHE,)),
        Stage("curate", {**cfg.curate.model_dump(mode="json"), "allow": cfg.ingest.redact.allow}, ["examples", "tokenizer"],
              lambda: run_curate(cfg.curate, cfg.ingest.redact.allow, cfg.executor, d("examples"), d("tokenizer"),
                                 d("curate")),
              # Not what later stages read: timings and pids, and reasons that quote the settings.
              exclude=("cache", "log.txt", "excluded.jsonl")),
        Stage("train", cfg.train, ["curate", "tokenizer"],
              lambda: run_train(cfg.train, d("curate"), d("tokenizer"), d("train")), exclude=("checkpoints",)),
        Stage("eval", cfg.eval, ["curate", "train"],
              lambda: run_eval(cfg.eval, d("curate"), d("train") / "model", d("eval"))),
        Stage("export", cfg.export, ["train"],
              lambda: run_export(cfg.export, d("train") / "model", d("export"))),
    ]}


def run_stages(cfg: Config, names: list[str], force: bool = False) -> RunDir:
    run = RunDir(cfg.run_dir)
    run.root.mkdir(parents=True, exist_ok=True)
    if is_main():
        atomic_write(run.config_file, dump_config(cfg))
    if cfg.train.base_model == "scratch":
        # Nothing is fetched from a hub unless the config names a hub id.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    plan = stages(cfg, run)
    quiet_libraries()
    for name in names:
        stage = plan[name]
        if name == "ingest":
            from .sources import fingerprint

            inputs = {"sources": fingerprint(cfg.sources)}
        else:
            inputs = {up: input_hash(run.stage(up), up) for up in stage.upstream}
        run_stage(name, run.stage(name), stage.settings, inputs, stage.run, console, force, stage.exclude)
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
