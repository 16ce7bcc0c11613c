"""The report holds a section for every stage, and each shows the numbers that stage recorded."""

import json
import re

from test_pipeline import QUICK, knowtune, setup


def manifest(run, folder):
    return json.loads((run / folder / "manifest.json").read_text())


def test_the_report_shows_each_stage_with_its_own_numbers(tmp_path):
    _, cfg = setup(tmp_path, QUICK)
    knowtune("run", cfg)
    run = tmp_path / "runs" / "tiny"
    md = (run / "report.md").read_text()
    page = (run / "report.html").read_text()
    sections = re.split(r"^## ", md, flags=re.M)
    named = {s.split("\n", 1)[0]: s for s in sections[1:]}
    assert {"Ingest", "Build", "Curate", "Train", "Evaluate", "Export"} <= set(named), list(named)

    ingest = manifest(run, "documents")["counts"]
    for kind, n in ingest["by_kind"].items():
        assert f"| {kind} | {n} |" in named["Ingest"]
    chunks = manifest(run, "chunks")["counts"]
    assert f"{chunks['chunks']} chunks, {chunks['tokens']:,} tokens" in named["Build"]
    for kind, n in manifest(run, "examples")["counts"]["by_kind"].items():
        assert f"| {kind} | {n} |" in named["Build"]
    stats = json.loads((run / "dataset" / "stats.json").read_text())
    for step in stats["funnel"]:
        assert f"| {step['step']} | {step['in']} | {step['out']} | {step['in'] - step['out']} |" in named["Curate"]
    train = manifest(run, "train")["counts"]
    assert f"{train['steps']} steps" in named["Train"] and f"validation loss {train['eval_loss']}" in named["Train"]
    results = json.loads((run / "eval" / "results.json").read_text())
    val = results["held_out"]["val"]["tuned"]
    assert f"| val | tuned | {val['loss']} |" in named["Evaluate"]
    trained = results["trained"]["tuned"]
    assert f"| trained | tuned | {trained['questions']} | {trained['exact_match']} |" in named["Evaluate"]
    assert str(run / "export" / "merged") in named["Export"]
    # the page says the same, images inside it
    assert f"<td>{val['loss']}</td>" in page and page.count("data:image/png;base64,") >= 2
