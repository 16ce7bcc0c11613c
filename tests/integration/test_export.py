"""The export stage: what a user takes away, each file loadable where it is meant to run."""

import json

import pytest

from conftest import make_pretrained
from knowtune.config import ExportConfig
from knowtune.export import run_export
from knowtune.settings import ExportSettings


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    model = make_pretrained(root / "train" / "model")  # Llama-3 template, eot as EOS, a pad of its own
    settings = ExportSettings(export=ExportConfig(gguf=["f16", "q8_0"], check_prompts=2, check_tokens=8),
                              name="lamps", base_model=str(model), system_prompt=None, max_length=256)
    counts = run_export(settings, model, root, root / "export")
    return root / "export", counts


def test_the_merged_folder_loads_with_plain_transformers_and_its_chat_template(exported):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, _ = exported
    tok = AutoTokenizer.from_pretrained(out / "merged")
    assert tok.chat_template and "<|start_header_id|>" in tok.chat_template
    assert AutoModelForCausalLM.from_pretrained(out / "merged").config.vocab_size == len(tok)


def test_every_gguf_is_read_back_by_llama_cpp_with_the_same_tokens(exported):
    out, counts = exported
    checks = json.loads((out / "checks.json").read_text())
    assert set(checks) == {"f16", "q8_0"} and counts["tokenisation_identical"] is True
    for kind, c in checks.items():
        assert (out / c["path"]).stat().st_size > 0
        assert c["check"]["tokenisation"]["identical"] and c["check"]["greedy"]["prompts"] == 2


def test_the_modelfile_serves_the_smallest_file_with_the_models_template(exported):
    out, counts = exported
    text = (out / "Modelfile").read_text()
    assert text.startswith("FROM ./model-q8_0.gguf\n")
    assert '<|start_header_id|>' in text and 'PARAMETER stop "<|eot_id|>"' in text and "num_ctx 256" in text
    assert counts["modelfile"] == "Modelfile with the llama3 template"


def test_the_model_card_has_the_hubs_metadata_and_says_how_to_run_it(exported):
    out, _ = exported
    card = (out / "README.md").read_text()
    front = card.split("---")[1]
    assert "license:" in front and "tags: [knowtune, fine-tuned, gguf]" in front
    assert "ollama create lamps -f Modelfile" in card and "llama-server -m model-q8_0.gguf" in card


def test_pushing_offline_says_it_cannot_and_keeps_the_files(exported, monkeypatch):
    from rich.console import Console

    from knowtune.export.push import push_export

    out, _ = exported
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    console = Console(record=True, width=300)
    assert push_export(out, "someone/lamps", console) is False
    assert "not pushed to someone/lamps: HF_HUB_OFFLINE is set" in console.export_text()
    assert (out / "merged").is_dir()
