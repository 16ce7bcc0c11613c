import subprocess
import sys

import pytest

COMMANDS = ["run", "ingest", "build", "curate", "train", "sweep", "eval", "export", "report", "chat"]


def knowtune(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "knowtune", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})


def test_help_lists_every_command():
    out = knowtune("--help").stdout
    for command in COMMANDS:
        assert command in out


# What each command's help must tell a user: its argument, and the options it has that others do not.
HELP = {
    "run": ["config", "overrides", "--force", "Stages whose settings and inputs did not change"],
    "ingest": ["target", "overrides", "--force", "skipped files keep a reason"],
    "build": ["target", "--dry-run", "--force", "without sending any"],
    "curate": ["target", "overrides", "--force"],
    "train": ["target", "--resume", "--force", "last complete checkpoint"],
    "sweep": ["config", "overrides", "study.db"],
    "eval": ["target", "overrides", "--force"],
    "export": ["target", "overrides", "--force"],
    "report": ["target", "report.md"],
    "chat": ["run_dir", "--max-new-tokens", "--system"],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_explains_its_argument_and_its_own_options(command):
    proc = knowtune(command, "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    for needed in HELP[command]:
        assert needed in text, (command, needed)
    assert "key.sub=value" in text or command == "chat"  # every stage command takes overrides


def test_bad_config_is_one_line_and_exit_status_2(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: x\nsources: [{type: repo, path: .}]\ncurate: {min_tokns: 3}\n")
    proc = knowtune("run", cfg)
    assert proc.returncode == 2
    assert "unknown key 'curate.min_tokns' (did you mean 'min_tokens'?)" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_a_folder_that_is_not_a_run_is_refused(tmp_path):
    proc = knowtune("eval", tmp_path)
    assert proc.returncode == 2 and "not a run directory" in proc.stdout


def test_chat_without_a_model_says_what_to_do(tmp_path):
    proc = knowtune("chat", tmp_path)
    assert proc.returncode == 2 and "run `knowtune run` first" in proc.stdout


def test_train_resume_without_a_checkpoint_says_so(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"name: x\nruns_dir: {tmp_path / 'runs'}\nsources: [{{type: repo, path: .}}]\n")
    proc = knowtune("train", cfg, "--resume")
    assert proc.returncode == 2
    assert "no complete checkpoint to resume from" in proc.stdout.replace("\n", "")
    proc = knowtune("train", cfg, "--resume", "--force")
    assert proc.returncode == 2 and "choose one" in proc.stdout


def test_a_sweep_of_data_settings_is_refused(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"name: x\nruns_dir: {tmp_path / 'runs'}\nsources: [{{type: repo, path: .}}]\n"
                   "sweep: {curate.min_tokens: [4, 8]}\n")
    proc = knowtune("sweep", cfg)
    assert proc.returncode == 2 and "'curate.min_tokens' is not a train.* or eval.* setting" in proc.stdout
