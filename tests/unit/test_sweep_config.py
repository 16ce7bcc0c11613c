"""The sweep section: what it accepts and refuses, how trials are named, and how results are ranked."""

import json

import optuna
import pytest
from pydantic import ValidationError

from knowtune.config import SweepConfig, SweepRange
from knowtune.sweep import grid_points, suggest, trial_name
from knowtune.sweep_report import write_results


def test_a_plain_mapping_of_lists_is_a_grid():
    sweep = SweepConfig.model_validate({"train.learning_rate": [1e-3, 3e-3], "train.lora.r": [2, 4]})
    assert sweep.sampler == "grid" and len(grid_points(sweep.space)) == 4


@pytest.mark.parametrize("given, message", [
    ({"space": {"train.learning_rate": {"low": 1e-4, "high": 1e-2}}}, "a range needs sampler random or tpe"),
    ({"space": {"train.learning_rate": [1e-3]}, "sampler": "tpe"}, "say how many trials"),
    ({"space": {"curate.min_tokens": [4, 8]}}, "not a train.* or eval.* setting"),
    ({"space": {"train.learning_rate": {"low": 0.0, "high": 1e-2, "log": True}}, "sampler": "random", "trials": 2},
     "a log range needs low > 0"),
    ({"space": {"train.epochs": {"low": 3, "high": 1}}, "sampler": "random", "trials": 2}, "must be under high"),
])
def test_settings_that_cannot_work_are_refused(given, message):
    with pytest.raises(ValidationError, match=message):
        SweepConfig.model_validate(given)


def test_ranges_give_whole_numbers_or_floats_and_lists_any_value():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    assert isinstance(suggest(trial, "train.lora.r", SweepRange(low=2, high=64, log=True)), int)
    lr = suggest(trial, "train.learning_rate", SweepRange(low=1e-5, high=1e-3, log=True))
    assert isinstance(lr, float) and 1e-5 <= lr <= 1e-3
    modules = suggest(trial, "train.lora.target_modules", [["q_proj", "v_proj"], "all-linear"])
    assert modules in (["q_proj", "v_proj"], "all-linear")
    assert trial_name({"train.learning_rate": 0.000123456789, "train.lora.r": 8}) == "learning_rate=0.000123457_r=8"


def test_results_are_ranked_by_the_metric_and_test_numbers_stay_out(tmp_path):
    sweep = SweepConfig.model_validate({"space": {"train.learning_rate": [1e-3, 3e-3, 1e-2]},
                                        "metric": "knowledge_f1"})
    dist = {"train.learning_rate": optuna.distributions.CategoricalDistribution([1e-3, 3e-3, 1e-2])}
    trials = [optuna.trial.create_trial(params={"train.learning_rate": lr}, distributions=dist, value=f1,
                                        user_attrs={"folder": f"lr={lr}", "results": {"knowledge_f1": f1,
                                                                                      "val_loss": 2 - f1}})
              for lr, f1 in ((1e-3, 0.2), (3e-3, 0.5), (1e-2, 0.1))]
    table = write_results(tmp_path, sweep, trials, None).read_text()
    rows = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["knowledge_f1"] for r in rows] == [0.5, 0.2, 0.1]  # highest first
    assert "| 1 | **lr=0.003** (best) |" in table and "ranked by knowledge_f1, highest first" in table
    assert (tmp_path / "plot.png").stat().st_size > 1000


def test_a_grid_point_whose_trial_failed_waits_again_and_no_point_waits_twice():
    from optuna.trial import TrialState

    from knowtune.sweep import enqueue_grid

    space = {"train.learning_rate": [1e-3, 3e-3], "train.lora.r": [2, 4]}
    study = optuna.create_study()
    enqueue_grid(study, space)
    enqueue_grid(study, space)  # a second worker starting: nothing new
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 4
    done, failed = study.ask(), study.ask()
    for t in (done, failed):
        for key, values in space.items():
            t.suggest_categorical(key, values)
    study.tell(done, 1.0)
    study.tell(failed, state=TrialState.FAIL)  # e.g. out of memory
    enqueue_grid(study, space)
    waiting = [t.system_attrs["fixed_params"] for t in study.get_trials(states=(TrialState.WAITING,))]
    assert len(waiting) == 3 and failed.params in waiting and done.params not in waiting
