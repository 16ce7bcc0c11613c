"""Hyperparameter sweeps with Optuna: grid, random or TPE over train and eval settings, on one dataset.

The dataset stages run once (under a lock, so workers started together do not
build it twice); each trial trains and evaluates in runs/<name>/sweep/<trial>/,
named by its settings. The study is a local SQLite file (sweep/study.db): a
sweep started again runs only the trials not finished, several `knowtune sweep`
processes share its trials, and a trial whose process died (no heartbeat for
sweep.stale_after seconds) runs again, resuming from its last complete
checkpoint. Trials are ranked by validation loss or by F1 on the selection half
of the knowledge questions; test, benchmarks and the other half never choose,
and the best setting's retraining (sweep.retrain) adds only the val split.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Config, ConfigError, SweepConfig, SweepRange, stage_hash
from .config_file import apply_override, dump_config, validate
from .progress import console
from .records import atomic_write
from .runs import STAGE_DIRS, RunDir, read_manifest
from .sweep_report import LOWER_IS_BETTER, settings_of

DATA_STAGES = ["ingest", "tokenizer", "chunk", "examples", "curate"]
TRIAL_STAGES = ("train", "eval")


@dataclass(frozen=True)
class TrialDir(RunDir):
    """A run directory whose train and eval live in the trial's folder, the rest in the sweep's run."""

    trial: Path = Path()

    def stage(self, name: str) -> Path:
        return self.trial / STAGE_DIRS[name] if name in TRIAL_STAGES + ("export",) else super().stage(name)


def grid_points(space: dict[str, Any]) -> list[dict[str, Any]]:
    keys = list(space)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(space[k] for k in keys))]


def suggest(trial, key: str, spec: list[Any] | SweepRange) -> Any:
    if isinstance(spec, list):
        # Optuna stores choices it can compare; lists and dicts go through as JSON text
        plain = all(v is None or isinstance(v, (bool, int, float, str)) for v in spec)
        choices = spec if plain else [json.dumps(v) for v in spec]
        value = trial.suggest_categorical(key, choices)
        return value if plain else json.loads(value)
    if isinstance(spec.low, int) and isinstance(spec.high, int):
        return trial.suggest_int(key, spec.low, spec.high, log=spec.log)
    return trial.suggest_float(key, spec.low, spec.high, log=spec.log)


def trial_name(settings: dict[str, Any]) -> str:
    parts = [f"{k.split('.')[-1]}={v:.6g}" if isinstance(v, float) else f"{k.split('.')[-1]}={v}"
             for k, v in settings.items()]
    return "_".join(parts).replace("/", "-").replace(" ", "")


@contextmanager
def locked(path: Path):
    """One process at a time; the others wait (the dataset stages are then unchanged for them, and skipped)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_study(sweep: SweepConfig, folder: Path, identity: str):
    """The study of these settings on this dataset; `identity` changes when anything a trial depends on does."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = RDBStorage(f"sqlite:///{folder / 'study.db'}", heartbeat_interval=max(1, sweep.stale_after // 4),
                         grace_period=sweep.stale_after,
                         heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3))
    samplers = {"grid": optuna.samplers.RandomSampler, "random": optuna.samplers.RandomSampler,
                "tpe": optuna.samplers.TPESampler}
    direction = "minimize" if LOWER_IS_BETTER[sweep.metric] else "maximize"
    # Other settings or another dataset make another study (in the same file): old results do not count.
    return optuna.create_study(study_name=f"sweep-{identity[:12]}", storage=storage,
                               sampler=samplers[sweep.sampler](seed=sweep.seed), direction=direction,
                               load_if_exists=True)


def enqueue_grid(study, space: dict[str, Any]) -> None:
    """Every grid point not finished, running or waiting becomes a waiting trial (again, if its trial failed)."""
    from optuna.trial import TrialState

    def key(params: dict) -> str:
        return json.dumps(params, sort_keys=True)

    taken = {key(t.params or t.system_attrs.get("fixed_params", {}))
             for t in study.get_trials(deepcopy=False,
                                       states=(TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING))}
    for point in grid_points(space):
        params = {k: _stored(v) for k, v in point.items()}
        if key(params) not in taken:
            study.enqueue_trial(params, user_attrs={"grid": True})


def run_sweep(cfg: Config, raw: dict) -> Path:
    """Run the trials not finished yet (and the retraining, if asked); write the table and plot; return the table."""
    import optuna
    from optuna.storages import fail_stale_trials
    from optuna.trial import TrialState

    from .pipeline import quiet_libraries, run_stages
    from .sweep_report import write_results

    sweep = cfg.sweep
    if not sweep.space:
        raise ConfigError("sweep.space is empty; add e.g. sweep: {space: {train.learning_rate: [1e-3, 3e-3]}}")
    folder = cfg.run_dir / "sweep"
    with locked(folder / "data.lock"):
        run = run_stages(cfg, DATA_STAGES)
    quiet_libraries()
    grid = sweep.sampler == "grid"
    identity = stage_hash({"config": cfg.model_dump(mode="json", exclude={"sweep"}),
                           "sweep": sweep.model_dump(mode="json", exclude={"retrain", "stale_after"}),
                           "dataset": (read_manifest(run.stage("curate")) or {}).get("output_hash")})
    with locked(folder / "study.lock"):
        study = open_study(sweep, folder, identity)
        fail_stale_trials(study)  # a trial killed with its process runs again (and resumes its checkpoint)
        if grid:
            enqueue_grid(study, sweep.space)
    target = len(grid_points(sweep.space)) if grid else sweep.trials

    def left(study) -> bool:
        states = [t.state for t in study.get_trials(deepcopy=False)]
        if grid:  # every grid point is a waiting trial until a worker takes it
            return TrialState.WAITING in states
        taken = sum(s in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING) for s in states)
        return taken < target or TrialState.WAITING in states

    def objective(trial) -> float:
        if grid and not trial.user_attrs.get("grid"):
            # another worker took the last waiting point between our check and this trial
            study.stop()
            raise optuna.TrialPruned("grid finished")
        settings = {key: suggest(trial, key, spec) for key, spec in sweep.space.items()}
        name = trial_name(settings)
        trial.set_user_attr("folder", name)
        console.print(f"[bold]sweep[/bold]: trial {trial.number} {name}")
        row = run_trial(raw, settings, run, folder / name, {"eval.knowledge_questions": "select"})
        trial.set_user_attr("results", row)
        value = row.get(sweep.metric)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"sweep trial {name}: no {sweep.metric} to rank by (got {value!r}); "
                             + ("the dataset needs a val split" if sweep.metric == "val_loss"
                                else "the dataset needs knowledge questions (curate.knowledge_share)"))
        return float(value)

    def stop_when_done(study, trial) -> None:
        if not left(study):
            study.stop()

    if left(study):
        study.optimize(objective, callbacks=[stop_when_done], gc_after_trial=True)
    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    others = study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
    best = None
    if sweep.retrain and finished and others:
        console.print(f"sweep: {len(others)} trials of other workers are not finished; the last worker to "
                      "finish retrains the best")
    elif sweep.retrain and finished:
        with locked(folder / "best.lock"):
            best = retrain_best(raw, study, run, folder / "best")
    return write_results(folder, sweep, finished, best)


def retrain_best(raw: dict, study, run: RunDir, folder: Path) -> dict[str, Any]:
    """The best trial's settings once more, on train + val; evaluated on the report half of the knowledge set."""
    settings = settings_of(study.best_trial)
    console.print(f"[bold]sweep[/bold]: retraining the best, {trial_name(settings)}, on train + val")
    row = run_trial(raw, settings, run, folder, {"train.train_on_val": True, "eval.knowledge_questions": "report"})
    return {"trial": "best, on train + val", **settings, **row}


def run_trial(raw: dict, settings: dict[str, Any], run: RunDir, folder: Path, fixed: dict[str, Any]) -> dict:
    from .pipeline import stages
    from .runs import input_hash, run_stage

    trial_raw = json.loads(json.dumps(raw))
    trial_raw.pop("sweep", None)
    where = f"sweep trial {folder.name}"
    for key, value in {**settings, **fixed}.items():
        apply_override(trial_raw, f"{key}={json.dumps(value)}", where=where)
    trial_cfg = validate(trial_raw, where=where)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "config.yaml", dump_config(trial_cfg))
    trial_run = TrialDir(run.root, folder)
    plan = stages(trial_cfg, trial_run)
    for name in TRIAL_STAGES:
        stage = plan[name]
        inputs = {up: input_hash(trial_run.stage(up), up) for up in stage.upstream}
        run_stage(name, trial_run.stage(name), stage.settings, inputs, stage.run, console, exclude=stage.exclude)
    return result_row(trial_run)


def result_row(run: TrialDir) -> dict[str, Any]:
    train = (read_manifest(run.stage("train")) or {}).get("counts", {})
    evaluation = (read_manifest(run.stage("eval")) or {}).get("counts", {})
    # test results stay in the trial's eval folder: a sweep's table must not invite choosing by them
    metrics = {k: v for k, v in evaluation.items() if isinstance(v, (int, float)) and not k.startswith("test_")}
    return {"train_loss": train.get("train_loss"), "train_seconds": train.get("train_seconds"), **metrics}


def _stored(value: Any) -> Any:
    return value if value is None or isinstance(value, (bool, int, float, str)) else json.dumps(value)
