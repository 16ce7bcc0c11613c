"""Every setting a stage reads while it runs is in the settings its manifest hashed, and nothing else of the
config reaches it: so a setting cannot change a stage's output without rerunning it."""

from typing import Any

from pydantic import BaseModel

from conftest import TINY_SHAPE, make_repo
from knowtune.config_file import validate
from knowtune.pipeline import ORDER, stages
from knowtune.progress import console
from knowtune.runs import RunDir, input_hash, read_manifest, run_stage
from knowtune.settings import CurateSettings

# Settings a stage reads that its hash leaves out on purpose (settings.py says why).
UNHASHED = {("curate", "executor")}


class Recorder:
    """A settings value (or the whole config) that notes the dotted path of every attribute read from it."""

    def __init__(self, obj: Any, log: list[str], path: str = "", deep: bool = True):
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_log", log)
        object.__setattr__(self, "_path", path)
        object.__setattr__(self, "_deep", deep)  # shallow: notes the top-level reads, hands out plain values

    @property
    def __class__(self):  # isinstance(recorder, CurateConfig) holds, as for the value itself
        return type(self._obj)

    def __getattr__(self, name: str):
        value = getattr(self._obj, name)
        path = f"{self._path}.{name}" if self._path else name
        if isinstance(value, BaseModel) and self._deep:
            return Recorder(value, self._log, path)
        # a method (model_dump) reads the whole value it is called on; a list or a dict is read whole
        self._log.append(self._path if callable(value) else path)
        return value

    def __setattr__(self, name, value):
        raise AssertionError(f"a stage assigned {self._path}.{name}")


def resolve(dumped: dict, path: str) -> bool:
    node: Any = dumped
    for part in [p for p in path.split(".") if p]:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_each_stage_reads_only_what_its_manifest_hashes(tmp_path):
    repo = make_repo(tmp_path / "repo")
    raw = {
        "name": "t", "runs_dir": str(tmp_path / "runs"),
        "sources": [{"type": "repo", "path": str(repo)}, {"type": "git", "path": str(repo)}],
        "build": {"tokenizer": {"vocab_size": 600}},
        "curate": {"semantic_dedup": {"enabled": False}, "knowledge_share": 0.3},
        "train": {"model": TINY_SHAPE, "precision": "fp32", "max_length": 256, "batch_size": 4, "max_steps": 2},
        "eval": {"knowledge_samples": 2, "trained_samples": 2, "max_new_tokens": 4, "general_samples": 2},
    }
    config_reads: list[str] = []
    cfg = Recorder(validate(raw), config_reads, deep=False)
    run = RunDir(tmp_path / "runs" / "t")
    plan = stages(cfg, run)  # the one place config becomes settings
    built = len(config_reads)
    assert built and any(p.startswith("curate") for p in config_reads)
    for name in ORDER:
        stage = plan[name]
        reads: list[str] = []
        inputs = {up: input_hash(run.stage(up), up) for up in stage.upstream}
        run_stage(name, run.stage(name), Recorder(stage.settings, reads), inputs, stage.run, console,
                  exclude=stage.exclude)
        hashed = read_manifest(run.stage(name))["config"]
        assert reads, f"{name} read none of its settings"
        for path in reads:
            unhashed = (name, path.split(".")[0]) in UNHASHED
            assert resolve(hashed, path) or unhashed, f"{name} read {path}, which its manifest does not hash"
        assert len(config_reads) == built, f"{name} read the config itself: {config_reads[built:]}"
    assert isinstance(plan["curate"].settings, CurateSettings)
    assert "executor" not in read_manifest(run.stage("curate"))["config"]
