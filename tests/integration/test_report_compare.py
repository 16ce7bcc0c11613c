"""`knowtune report RUN_A RUN_B`: one page with both runs' numbers side by side, and what differs."""

import json

import pytest

from test_pipeline import knowtune
from test_report import LABELS, make_run, row, sections_of


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    runs = tmp_path_factory.mktemp("compare") / "runs"
    # the second run: trained from scratch with another learning rate, so only the tuned ways
    return make_run(runs, "quick"), make_run(runs, "scratchy", ways=("tuned", "tuned_rag"), seed=11,
                                             learning_rate=0.001, judge=False, during=False, sweep=False)


def results(run):
    return json.loads((run / "eval" / "results.json").read_text())


def test_two_runs_compare_on_one_page_in_the_first_runs_folder(two_runs):
    a, b = two_runs
    proc = knowtune("report", a, b)
    assert f"comparison: {a / 'compare.md'}" in proc.stdout.replace("\n", "")
    md = (a / "compare.md").read_text()
    named = sections_of(md)
    assert list(named) == ["Runs", "Summary", "Questions, four ways"]
    assert row("train.learning_rate", 0.0002, 0.001) in named["Runs"]  # the setting that changed

    ra, rb = results(a), results(b)
    ka, kb = ra["knowledge"]["tuned"]["f1"], rb["knowledge"]["tuned"]["f1"]
    assert row("knowledge F1, tuned", ka, kb, f"{kb - ka:+.4g}") in named["Summary"]
    assert row("knowledge F1, base", ra["knowledge"]["base"]["f1"], "-", " ") in named["Summary"]
    assert row("validation loss, base", ra["held_out"]["val"]["base"]["loss"], "-", " ") in named["Summary"]

    sets = named["Questions, four ways"]
    header = ["knowledge", *[f"quick: {LABELS[w]}" for w in LABELS], "scratchy: tuned", "scratchy: tuned + RAG"]
    assert row(*header) in sets
    assert row("F1", *[ra["knowledge"][w]["f1"] for w in LABELS], kb, rb["knowledge"]["tuned_rag"]["f1"]) in sets
    assert f"tuned F1: {ka} in quick, {kb} in scratchy ({kb - ka:+.2f})" in sets
    for name in ("paraphrase", "test", "trained", "general"):
        assert f"**{name}**" in sets
    page = (a / "compare.html").read_text()
    assert f"<td>{kb}</td>" in page


def test_the_comparison_goes_where_out_says(two_runs, tmp_path):
    a, b = two_runs
    knowtune("report", b, a, "--out", tmp_path / "side-by-side")
    md = (tmp_path / "side-by-side" / "compare.md").read_text()
    assert md.startswith("# knowtune comparison: scratchy vs quick")
    assert (tmp_path / "side-by-side" / "compare.html").is_file()


def test_one_run_rebuilds_its_report_and_more_than_two_are_refused(two_runs, tmp_path):
    a, b = two_runs
    (a / "report.md").unlink(missing_ok=True)
    proc = knowtune("report", a)
    assert f"report: {a / 'report.md'}" in proc.stdout.replace("\n", "") and (a / "report.html").is_file()

    proc = knowtune("report", a, b, a, check=False)
    assert proc.returncode == 2 and "one run (with any overrides) or two runs" in proc.stdout
    proc = knowtune("report", a, tmp_path, check=False)  # an empty folder is not a run
    assert proc.returncode == 2 and "no finished stage" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
