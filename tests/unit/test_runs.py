from rich.console import Console

from knowtune.runs import input_hash, read_manifest, run_stage, StageError

import pytest


def stage(folder, settings, inputs, calls, console=None):
    def work(given):
        assert given is settings  # the value its manifest hashes
        calls.append(1)
        (folder / "out.txt").write_text(f"{given}")
        return {"n": 1}

    return run_stage("demo", folder, settings, inputs, work, console or Console(quiet=True))


def test_unchanged_stage_is_skipped_and_says_so(tmp_path):
    calls = []
    stage(tmp_path, {"a": 1}, {"up": "h1"}, calls)
    console = Console(record=True, width=200)
    stage(tmp_path, {"a": 1}, {"up": "h1"}, calls, console)
    assert len(calls) == 1
    assert "demo: unchanged, skipped" in console.export_text()


def test_changed_settings_or_inputs_rerun(tmp_path):
    calls = []
    stage(tmp_path, {"a": 1}, {"up": "h1"}, calls)
    stage(tmp_path, {"a": 2}, {"up": "h1"}, calls)
    stage(tmp_path, {"a": 2}, {"up": "h2"}, calls)
    assert len(calls) == 3


def test_edited_or_deleted_output_reruns(tmp_path):
    calls = []
    stage(tmp_path, {"a": 1}, {}, calls)
    (tmp_path / "out.txt").write_text("edited by hand")
    stage(tmp_path, {"a": 1}, {}, calls)
    (tmp_path / "out.txt").unlink()
    stage(tmp_path, {"a": 1}, {}, calls)
    assert len(calls) == 3


def test_a_stage_that_dies_leaves_no_manifest_and_reruns(tmp_path):
    calls = []
    stage(tmp_path, {"a": 1}, {}, calls)

    def dies(_):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_stage("demo", tmp_path, {"a": 2}, {}, dies, Console(quiet=True))
    assert read_manifest(tmp_path) is None
    stage(tmp_path, {"a": 1}, {}, calls)
    assert len(calls) == 2


def test_manifest_records_hashes_counts_and_versions(tmp_path):
    m = stage(tmp_path, {"a": 1}, {"up": "h"}, [])
    assert m["counts"] == {"n": 1} and "out.txt" in m["outputs"]
    assert {"python", "torch", "transformers"} <= set(m["versions"])
    assert input_hash(tmp_path, "demo") == m["output_hash"]


def test_missing_upstream_stage_is_a_clear_error(tmp_path):
    with pytest.raises(StageError, match="run `knowtune build` first"):
        input_hash(tmp_path / "chunks", "chunk")
