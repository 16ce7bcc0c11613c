"""Scores of known answers, and the honest verdict of which way of answering wins."""

import numpy as np
import pytest

from knowtune.evaluate import known_split
from knowtune.evaluate.compare import compare, paired_interval
from knowtune.evaluate.metrics import exact_match, f1, rouge_l

REFERENCE = "The ledger listens on port 7460."


@pytest.mark.parametrize("answer, em, f1_, rouge", [
    ("the ledger listens on port 7460", 1.0, 1.0, 1.0),  # case, punctuation and articles do not count
    ("It listens on port 7460.", 0.0, 0.8, 0.8),  # partial: 4 of the 5 words ("the" is no word here)
    ("Port 7460 is where the ledger listens.", 0.0, 0.7273, 0.3636),  # every word, another order: F1 yes, LCS no
    ("The scale bridge uses 7341.", 0.0, 0.0, 0.0),  # wrong
])
def test_exact_match_f1_and_rouge_l_of_known_answers(answer, em, f1_, rouge):
    assert exact_match(answer, REFERENCE) == em
    assert f1(answer, REFERENCE) == pytest.approx(f1_, abs=1e-4)
    assert rouge_l(answer, REFERENCE) == pytest.approx(rouge, abs=1e-4)


def test_a_clear_winner_is_named_and_a_tie_is_called_a_tie():
    rng = np.random.default_rng(0)
    questions = [f"q{i}" for i in range(60)]
    base = {q: float(rng.random() < 0.2) for q in questions}
    tuned = {q: float(rng.random() < 0.8) for q in questions}  # planted: far better
    noisy = {q: float(rng.random() < 0.2) for q in questions}  # the same as base, other draws
    verdict = compare({"base": base, "tuned": tuned})
    assert verdict["winner"] == "tuned" and verdict["questions"] == 60
    pair = verdict["pairs"][0]  # base minus tuned
    assert pair["high"] < -0.3 and pair["better"] == "tuned" and "60 questions" in verdict["verdict"]
    tie = compare({"base": base, "base_again": noisy})
    assert tie["winner"] is None and tie["verdict"].startswith("no clear winner")
    assert tie["pairs"][0]["low"] < 0 < tie["pairs"][0]["high"]


def test_the_interval_is_paired_and_repeatable():
    a, b = np.array([1.0, 0.0, 1.0, 1.0]), np.array([0.0, 0.0, 1.0, 0.0])
    assert paired_interval(a, b, seed=3) == paired_interval(a, b, seed=3)
    mean, low, high = paired_interval(a, a)
    assert mean == low == high == 0.0


def test_the_gain_is_reported_on_what_the_base_model_did_not_know():
    rows = [{"model": m, "id": q, "f1": f} for q, fb, ft in (("a", 0.9, 1.0), ("b", 0.1, 0.6), ("c", 0.0, 0.4))
            for m, f in (("base", fb), ("tuned", ft))]
    split = known_split(rows)
    assert split["known"] == 1 and split["unknown"] == 2
    assert split["tuned_gain_on_unknown"] == pytest.approx(0.45)
