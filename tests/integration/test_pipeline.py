"""The whole pipeline on the fixture repository, through the installed `knowtune` command."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import make_repo

pytestmark = pytest.mark.slow

CONFIG = """
name: tiny
runs_dir: {runs}
sources:
  - {{type: repo, path: {repo}}}
  - {{type: git, path: {repo}, last: 100}}
build: {{tokenizer: {{vocab_size: 1000}}}}
curate: {{val_share: 0.2, test_share: 0.1, knowledge_share: 0.2}}
train:
  model: {{hidden_size: 128, layers: 2, heads: 4, intermediate_size: 352}}
  precision: fp32   # the same outcome on every CPU; bfloat16 has tests of its own
  max_length: 384
  batch_size: 4
  epochs: 40
eval: {{knowledge_samples: 16, trained_samples: 16, general_samples: 8, max_new_tokens: 48}}
"""
STAGES = ["ingest", "base", "tokenizer", "chunk", "examples", "curate", "train", "eval", "export"]


def knowtune(*args, cwd=None, stdin=None, check=True):
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "knowtune", *map(str, args)], cwd=cwd, input=stdin,
                          capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"knowtune {args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def ran(output: str) -> list[str]:
    return [s for s in STAGES if f"{s}: running" in output]


def skipped(output: str) -> list[str]:
    return [s for s in STAGES if f"{s}: unchanged, skipped" in output]


def setup(tmp: Path, config: str = CONFIG) -> tuple[Path, Path]:
    repo = make_repo(tmp / "repo")
    cfg = tmp / "cfg.yaml"
    cfg.write_text(config.format(runs=tmp / "runs", repo=repo))
    return repo, cfg


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipeline")
    repo, cfg = setup(tmp)
    proc = knowtune("run", cfg)
    return tmp / "runs" / "tiny", proc.stdout


def test_every_stage_runs_and_the_report_says_where_it_is(trained):
    run, out = trained
    assert ran(out) == STAGES
    assert f"report: {run / 'report.md'}" in out.replace("\n", "")
    md = (run / "report.md").read_text()
    for section in ("## Ingest", "## Build", "## Curate", "## Train", "## Evaluate", "## Export"):
        assert section in md
    # the report draws its own plots beside it (a stage's folder is its artifact), and links the dataset's
    assert "](report_plots/training.png)" in md and (run / "report_plots" / "training.png").stat().st_size > 1000
    assert "](dataset/plots/lengths.png)" in md and (run / "train" / "plots" / "loss.png").stat().st_size > 1000
    assert "### Example answers" in md  # every way's answers to a few questions per set
    assert "data:image/png;base64," in (run / "report.html").read_text()


def test_the_model_learned_what_it_was_trained_on(trained):
    run, _ = trained
    results = json.loads((run / "eval" / "results.json").read_text())
    val = results["held_out"]["val"]["tuned"]
    assert val["loss"] <= val["unigram_loss"] - 1.0, val
    trained = results["trained"]["tuned"]
    assert trained["f1_pass_rate"] >= 0.5 and trained["stopped_at_eos"] >= 0.9, trained
    # a model from scratch has no base to compare with: two ways, not four
    for name in ("knowledge", "general"):
        assert {"tuned", "tuned_rag"} <= set(results[name]) and not {"base", "base_rag"} & set(results[name])
    assert (run / "train" / "metrics.jsonl").read_text().count("eval_loss") >= 5


LOAD_PLAIN = textwrap.dedent("""
    import sys
    from transformers import AutoModelForCausalLM, AutoTokenizer
    path = sys.argv[1]
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    ids = tok.apply_chat_template([{"role": "user", "content": "Tell me about Pricing rules"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=60, do_sample=False)
    print(tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
    assert not any(m.startswith("knowtune") for m in sys.modules)
""")


def test_the_export_loads_and_generates_with_plain_transformers(trained):
    run, _ = trained
    proc = subprocess.run([sys.executable, "-c", LOAD_PLAIN, str(run / "export" / "merged")],
                          capture_output=True, text=True, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert "Pricing" in proc.stdout or "crowns" in proc.stdout, proc.stdout


def test_terminal_chat_answers_with_the_trained_template(trained):
    run, _ = trained
    proc = knowtune("chat", run, stdin="Tell me about Pricing rules\n/reset\nTell me about Lanterna\n/exit\n")
    replies = [line for line in proc.stdout.splitlines() if line.startswith("model>")]
    assert len(replies) == 2
    assert "crowns" in proc.stdout or "Orders" in proc.stdout


def test_each_stage_command_runs_alone_and_needs_its_inputs(trained, tmp_path):
    run, _ = trained
    for command in ("ingest", "build", "curate", "train", "eval", "export"):
        assert "unchanged, skipped" in knowtune(command, run).stdout
    _, cfg = setup(tmp_path)
    proc = knowtune("train", cfg, check=False)
    assert proc.returncode == 2 and "run `knowtune curate` first" in proc.stdout


QUICK = CONFIG.replace("epochs: 40", "epochs: 1\n  max_steps: 2").replace(
    "knowledge_samples: 16, trained_samples: 16, general_samples: 8, max_new_tokens: 48", "knowledge_samples: 2, trained_samples: 2, max_new_tokens: 8, general_samples: 4, paraphrase_samples: 2, test_samples: 2")


def test_reruns_redo_exactly_what_changed(tmp_path):
    repo, cfg = setup(tmp_path, QUICK)
    assert ran(knowtune("run", cfg).stdout) == STAGES
    assert skipped(knowtune("run", cfg).stdout) == STAGES

    (repo / "lanterna" / "pricing.py").touch()
    assert skipped(knowtune("run", cfg).stdout) == STAGES

    out = knowtune("run", cfg, "curate.knowledge_share=0.5").stdout
    assert skipped(out) == ["ingest", "base", "tokenizer", "chunk", "examples"]
    assert ran(out) == ["curate", "train", "eval", "export"]

    # A setting that changes nothing in the dataset reruns curation only:
    # later stages compare the dataset by content.
    out = knowtune("run", cfg, "curate.knowledge_share=0.5", "curate.min_tokens=4").stdout
    assert ran(out) == ["curate"] and skipped(out) == [s for s in STAGES if s != "curate"]

    path = repo / "lanterna" / "pricing.py"
    path.write_text(path.read_text().replace("0.9", "0.85"))
    # the base model does not depend on the sources
    assert ran(knowtune("run", cfg, "curate.knowledge_share=0.5", "curate.min_tokens=4").stdout) == [
        s for s in STAGES if s != "base"]


def test_a_stage_killed_midway_reruns_with_the_same_settings_and_nothing_before_it_does(tmp_path):
    import time

    # long enough to be killed midway (metrics appear at step 5), short enough that the rerun is quick
    _, cfg = setup(tmp_path, QUICK.replace("max_steps: 2", "max_steps: 60"))
    proc = subprocess.Popen([sys.executable, "-m", "knowtune", "run", str(cfg)], stdout=subprocess.PIPE, text=True)
    metrics = tmp_path / "runs" / "tiny" / "train" / "metrics.jsonl"
    for line in proc.stdout:
        if "train: running" in line:
            break
    while not metrics.exists():  # killed while training, after it has written something
        if proc.poll() is not None:
            pytest.fail("knowtune exited before training started")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "runs" / "tiny" / "train" / "manifest.json").exists()
    out = knowtune("run", cfg).stdout  # the very same settings: only the stage that did not finish runs
    assert skipped(out) == ["ingest", "base", "tokenizer", "chunk", "examples", "curate"]
    assert ran(out) == ["train", "eval", "export"]
