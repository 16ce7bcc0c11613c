"""Command line: `knowtune run CONFIG`, one subcommand per stage, and chat."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from .config import Config, ConfigError
from .config_file import load_config
from .progress import console

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Fine-tune a language model on your code, docs and change history, and show whether it worked.\n\n"
    "A run is described by one YAML file; its artifacts go to runs/<name>/. Every command takes that YAML file "
    "or an existing run directory, followed by any number of key.sub=value overrides.",
)

TARGET_HELP = "A YAML config, or a run directory (runs/<name>) whose saved config.yaml is used."
OVERRIDES_HELP = "Settings to change, as key.sub=value (e.g. train.max_steps=50 curate.min_tokens=16)."
FORCE_HELP = "Run even if nothing changed since the last run."


def _load(target: Path, overrides: list[str] | None) -> Config:
    path = target / "config.yaml" if target.is_dir() else target
    if target.is_dir() and not path.is_file():
        raise ConfigError(f"{target}: not a run directory (no config.yaml); pass the YAML config instead")
    return load_config(path, overrides or [])


def _guard(fn):
    """Turn the errors users cause into one line and exit status 2; leave real bugs their traceback."""
    from .runs import StageError
    from .sources import SourceError
    from .train.model import HardwareError
    from .train.preflight import PreflightError

    try:
        return fn()
    except (ConfigError, StageError, SourceError, FileNotFoundError, PreflightError, HardwareError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]: finished stages are kept; rerun to continue")
        raise typer.Exit(130)


def _run_commands(command_names: list[str], target: Path, overrides, force: bool, with_report: bool) -> None:
    from .pipeline import COMMANDS, report, run_stages

    def go():
        start = time.perf_counter()
        cfg = _load(target, overrides)
        names = [s for c in command_names for s in COMMANDS[c]]
        run = run_stages(cfg, names, force)
        if with_report:
            md, page = report(cfg, run)
            console.print(f"report: {md} and {page} ({time.perf_counter() - start:.0f}s in all)")

    _guard(go)


@app.command()
def run(
    config: Path = typer.Argument(..., help=TARGET_HELP),
    overrides: Optional[list[str]] = typer.Argument(None, help=OVERRIDES_HELP),
    force: bool = typer.Option(False, "--force", help="Rerun every stage."),
):
    """Run every stage (ingest, build, curate, train, eval, export) and write the report.

    Stages whose settings and inputs did not change since their last run are skipped.
    """
    _run_commands(["ingest", "build", "curate", "train", "eval", "export"], config, overrides, force, True)


def _stage_command(name: str, doc: str):
    def command(
        target: Path = typer.Argument(..., help=TARGET_HELP),
        overrides: Optional[list[str]] = typer.Argument(None, help=OVERRIDES_HELP),
        force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    ):
        _run_commands([name], target, overrides, force, False)

    command.__doc__ = doc
    app.command(name=name)(command)


_stage_command("ingest", "Read the sources into documents (runs/<name>/documents); skipped files keep a reason.")


@app.command()
def build(
    target: Path = typer.Argument(..., help=TARGET_HELP),
    overrides: Optional[list[str]] = typer.Argument(None, help=OVERRIDES_HELP),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Chunk, then print the requests, tokens and cost the teacher model would need, "
        "without sending any."),
):
    """Settle the tokenizer, chunk the documents and build examples (raw, templated, QA, teacher, preference)."""
    if not dry_run:
        return _run_commands(["build"], target, overrides, force, False)
    from .pipeline import dry_run as estimate

    def go():
        cfg = _load(target, overrides)
        numbers = estimate(cfg, force)
        console.print("teacher dry run (nothing sent):")
        for key, value in numbers.items():
            console.print(f"  {key}: {value:,}" if isinstance(value, int) else f"  {key}: {value}")

    _guard(go)


_stage_command("curate", "Deduplicate, filter by length and split the examples into train/val/test/knowledge.")


@app.command()
def train(
    target: Path = typer.Argument(..., help=TARGET_HELP),
    overrides: Optional[list[str]] = typer.Argument(None, help=OVERRIDES_HELP),
    force: bool = typer.Option(False, "--force", help="Start over, even from a complete checkpoint."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last complete checkpoint; fail if none."),
):
    """Train on the train split (SFT, DPO or ORPO through TRL) after a preflight; a rerun resumes.

    A run stopped by a kill, a crash or Ctrl-C continues from its last complete checkpoint when run
    again with the same settings; changed settings start over.
    """
    def check():
        from .train.checkpoints import last_complete

        from .distributed import is_main

        if force and resume:
            raise ConfigError("--force starts over and --resume continues: choose one")
        cfg = _load(target, overrides)
        folder = cfg.run_dir / "train" / "checkpoints"
        if force and is_main():
            shutil.rmtree(folder, ignore_errors=True)
        elif resume and last_complete(folder) is None:
            raise ConfigError(f"{folder}: no complete checkpoint to resume from; run without --resume to start")

    _guard(check)
    # a run that stopped left no manifest, so the stage is not fresh and runs (and resumes) by itself
    _run_commands(["train"], target, overrides, force, False)
_stage_command("eval", "Every question set answered four ways (base, base + retrieval, tuned, tuned + retrieval), "
                       "scored and compared; held-out loss by kind of document.")


@app.command()
def export(
    target: Path = typer.Argument(..., help=TARGET_HELP),
    overrides: Optional[list[str]] = typer.Argument(None, help=OVERRIDES_HELP),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    push: Optional[str] = typer.Option(None, "--push", help="Also push the export to this Hugging Face Hub repo "
                                       "(needs HF_TOKEN and the network)."),
):
    """Merged safetensors, the adapter, GGUF files checked in llama.cpp, an Ollama Modelfile and a model card."""
    _run_commands(["export"], target, overrides, force, False)
    if push:
        from .export.push import push_export

        _guard(lambda: push_export(_load(target, overrides).run_dir / "export", push, console))


@app.command()
def sweep(
    config: Path = typer.Argument(..., help="YAML config with a sweep: space of train.* and eval.* values."),
    overrides: Optional[list[str]] = typer.Argument(None, help=OVERRIDES_HELP),
):
    """Search train and eval settings with Optuna (grid, random or TPE) on one dataset; write a table and plot.

    The study is kept in runs/<name>/sweep/study.db: run the command again to finish what is left, or in
    several terminals at once to share the trials. A killed trial runs again from its last checkpoint.
    """
    def go():
        from .config_file import load_raw, validate
        from .sweep import run_sweep

        raw = load_raw(config, overrides or [])
        run_sweep(validate(raw, where=str(config)), raw)

    _guard(go)


@app.command(name="report")
def report_command(
    targets: list[str] = typer.Argument(..., help="The run to report on (target: a YAML config or a run directory) "
                                        "with any key.sub=value overrides; or two targets, RUN_A RUN_B, to compare "
                                        "side by side."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where compare.md and compare.html go when comparing two "
                                       "runs (default: the first run's folder)."),
):
    """Rebuild report.md and report.html from what the stages wrote; with two runs, write compare.md and
    compare.html: their summary numbers, settings and four-way tables side by side."""
    from .pipeline import report
    from .runs import RunDir

    def go():
        # an override always holds "=", a run never does: that is how the two kinds of argument are told apart
        overrides = [t for t in targets if "=" in t]
        runs = [Path(t) for t in targets if "=" not in t]
        if len(runs) == 1:
            cfg = _load(runs[0], overrides)
            md, page = report(cfg, RunDir(cfg.run_dir))
            console.print(f"report: {md} and {page}")
            return
        if len(runs) != 2 or overrides:
            raise ConfigError("report takes one run (with any overrides) or two runs to compare, nothing more")
        from .report import write_comparison

        a, b = (_run_dir(r) for r in runs)
        md, page = write_comparison(a, b, out or a.root)
        console.print(f"comparison: {md} and {page}")

    _guard(go)


def _run_dir(target: Path):
    """The run a YAML config names, or a run directory as it is; refused when no stage has finished there."""
    from .runs import RunDir, read_manifest

    run = RunDir(target) if target.is_dir() else RunDir(_load(target, []).run_dir)
    if not any(read_manifest(run.stage(s)) for s in ("ingest", "curate", "train", "eval")):
        raise ConfigError(f"{target}: no finished stage in {run.root}; run `knowtune run` first")
    return run


@app.command()
def chat(
    run_dir: str = typer.Argument(..., help="A run directory (runs/<name>), a model folder, or the URL of a running "
                                  "server (http://127.0.0.1:8000, from `knowtune serve` or any OpenAI-compatible one; "
                                  "its key is read from KNOWTUNE_API_KEY)."),
    max_new_tokens: int = typer.Option(256, help="Longest reply, in tokens."),
    system: Optional[str] = typer.Option(None, help="A system message to start the conversation with."),
):
    """Talk to the trained model in the terminal, with the chat template it was trained with; replies stream."""
    from .serve.chat import ChatError, repl

    def go():
        try:
            repl(run_dir, max_new_tokens, system, sys.stdin, console)
        except ChatError as err:  # no server there, or it refused us
            console.print(f"[red]error:[/red] {err}", markup=True, highlight=False)
            raise typer.Exit(2)

    _guard(go)


@app.command()
def serve(
    target: Path = typer.Argument(..., help="A run directory (runs/<name>) or a model folder."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on; 0.0.0.0 opens the server to the network "
                             "(set KNOWTUNE_API_KEY first)."),
    port: int = typer.Option(8000, help="Port to listen on."),
    rag: bool = typer.Option(False, "--rag", help="Put passages retrieved from the run's dataset ahead of each "
                             "question."),
    max_batch: int = typer.Option(32, min=1, help="Requests generated together; more wait in a queue."),
):
    """Serve the model over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/completions, /v1/models),
    with a web chat page at /.

    Requests are batched as they come. When KNOWTUNE_API_KEY is set, /v1/* requires it as a Bearer token.

    An absent temperature means what the model's generation_config.json says: greedy for knowtune's models.
    """
    def go():
        import os

        from .serve.app import LOOPBACK
        from .serve.app import serve as run_server
        from .serve.model import load
        from .serve.rag import RetrievalUnavailable, load_retriever

        try:
            retrieve = load_retriever(target) if rag else None
        except RetrievalUnavailable as err:
            console.print(f"[red]error:[/red] {err}")
            raise typer.Exit(2)
        loaded = load(target)
        api_key = os.environ.get("KNOWTUNE_API_KEY") or None
        url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
        console.print(f"serving {loaded.name} at {url}/v1 (OpenAI-compatible), web chat at {url}/")
        if api_key:
            console.print("API key required (KNOWTUNE_API_KEY): send 'Authorization: Bearer <key>'")
        elif host not in LOOPBACK:
            console.print(f"[yellow]warning:[/yellow] listening on {host} with no API key: anyone who can reach "
                          "this machine can use the model; set KNOWTUNE_API_KEY")
        run_server(loaded, host, port, api_key, max_batch, retrieve)

    _guard(go)


def main() -> None:  # pragma: no cover
    app()
