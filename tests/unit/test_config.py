from pathlib import Path

import pytest
import yaml

from knowtune.config import ConfigError, stage_hash
from knowtune.config_file import dump_config, load_config
from knowtune.settings import stage_settings

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))
ACCELERATE = sorted((Path(__file__).parents[2] / "configs" / "accelerate").glob("*.yaml"))
MINIMAL = {"name": "t", "sources": [{"type": "repo", "path": "."}]}


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_is_valid(path):
    cfg = load_config(path)
    assert cfg.name and cfg.sources


@pytest.mark.parametrize("path", ACCELERATE, ids=[p.name for p in ACCELERATE])
def test_every_shipped_accelerate_config_loads_in_accelerate(path):
    from accelerate.commands.config.config_args import ClusterConfig

    cfg = ClusterConfig.from_yaml_file(path)  # refuses unknown keys
    assert cfg.num_processes == 2 and cfg.mixed_precision == "no"


def test_unknown_key_names_key_location_and_nearest_valid_key(tmp_path):
    data = {**MINIMAL, "curate": {"min_token": 3}}
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, data))
    msg = str(err.value)
    assert "c.yaml" in msg and "'curate.min_token'" in msg and "did you mean 'min_tokens'" in msg
    assert "\n" not in msg


def test_unknown_key_inside_a_source_is_found_through_the_union(tmp_path):
    data = {"name": "t", "sources": [{"type": "repo", "path": ".", "exlude": ["x"]}]}
    with pytest.raises(ConfigError, match="did you mean 'exclude'"):
        load_config(write(tmp_path, data))


def test_unknown_source_type_is_an_error(tmp_path):
    data = {"name": "t", "sources": [{"type": "svn", "path": "."}]}
    with pytest.raises(ConfigError, match="sources.0"):
        load_config(write(tmp_path, data))


def test_wrong_value_names_key_and_value(tmp_path):
    with pytest.raises(ConfigError, match=r"train.max_length.*-5"):
        load_config(write(tmp_path, {**MINIMAL, "train": {"max_length": -5}}))


def test_overrides_set_nested_values_and_list_items(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL), ["train.max_steps=7", "curate.seed=3", "sources.0.exclude=[a/**]"])
    assert cfg.train.max_steps == 7 and cfg.curate.seed == 3
    assert cfg.sources[0].exclude == ["a/**"]


def test_override_of_unknown_key_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'max_steps'"):
        load_config(write(tmp_path, MINIMAL), ["train.max_step=7"])


def test_override_needs_an_equals_sign(tmp_path):
    with pytest.raises(ConfigError, match="key.sub=value"):
        load_config(write(tmp_path, MINIMAL), ["train.max_steps"])


def test_curation_max_tokens_defaults_to_training_max_length(tmp_path):
    cfg = load_config(write(tmp_path, {**MINIMAL, "train": {"max_length": 300}}))
    assert stage_settings(cfg)["curate"].curate.max_tokens == 300
    cfg = load_config(write(tmp_path, {**MINIMAL, "train": {"max_length": 300}, "curate": {"max_tokens": 100}}))
    assert stage_settings(cfg)["curate"].curate.max_tokens == 100


def test_derived_defaults_follow_a_changed_max_length_in_a_rerun(tmp_path):
    # `knowtune run runs/x train.max_length=1024` reads the run's saved config.yaml with an override
    first = load_config(write(tmp_path, {**MINIMAL, "train": {"max_length": 512}}))
    saved = tmp_path / "run-config.yaml"
    saved.write_text(dump_config(first))
    assert yaml.safe_load(saved.read_text())["build"]["chunk_tokens"] is None  # what the user wrote: nothing
    again = stage_settings(load_config(saved, ["train.max_length=1024"]))
    assert again["chunk"].chunk_tokens == 960
    assert again["curate"].curate.max_tokens == 1024
    pinned = stage_settings(load_config(saved, ["train.max_length=1024", "build.chunk_tokens=300"]))
    assert pinned["chunk"].chunk_tokens == 300  # a value the user sets stays


def test_paths_are_resolved_from_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.sources[0].path == tmp_path and cfg.run_dir == tmp_path / "runs" / "t"


def test_missing_file_and_bad_yaml_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_stage_hash_changes_with_settings_only(tmp_path):
    a = load_config(write(tmp_path, MINIMAL))
    b = load_config(write(tmp_path, MINIMAL), ["curate.min_tokens=9"])
    assert stage_hash(a.train) == stage_hash(b.train)
    assert stage_hash(a.curate) != stage_hash(b.curate)
