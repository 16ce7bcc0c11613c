"""Shared test fixtures. Nothing here reaches a hub: tests build tiny models and tokenizers locally."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import shutil  # noqa: E402
import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "tinyrepo"

# The fixture's history: which files each commit adds, and its message.
HISTORY = [
    (["README.md", "lanterna/__init__.py", "lanterna/inventory.py", ".gitignore"],
     "Add the inventory core\n\nItems are counted in one dict; taking more than is left is refused."),
    (["lanterna/pricing.py", "docs/pricing.md"],
     "Price orders for the harbour office\n\nWicks over fifty get ten percent off; totals round up to half crowns."),
    (["lanterna/storage.py", "lanterna/report.py"],
     "Keep the store in a JSON file and print the nightly report\n\nThe report warns when oil is below the reserve."),
    (["lanterna/cli.py", "docs/deploy.md", "docs/logo.png", "package-lock.json"],
     "Add the command line and the deployment notes"),
    (["lanterna/weather.py", "lanterna/schedule.py", "lanterna/units.py"],
     "Count storm nights and name the keeper on duty\n\nA storm night burns half as much oil again."),
    (["lanterna/orders.py", "lanterna/suppliers.py", "docs/suppliers.md", "docs/faq.md"],
     "Fill orders from the store and know the suppliers\n\nThe reorder list puts the slowest supplier first."),
    (["lanterna/archive.py", "CHANGELOG.md"],
     "Keep thirty nightly reports in the archive"),
]


def git(repo: Path, *args: str, date: str = "2026-10-01T12:00:00+00:00") -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "Ada Keeper", "GIT_AUTHOR_EMAIL": "ada@lighthouse.example",
           "GIT_COMMITTER_NAME": "Ada Keeper", "GIT_COMMITTER_EMAIL": "ada@lighthouse.example",
           "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env).stdout


def make_repo(dest: Path, history: bool = True) -> Path:
    """A copy of the fixture repository with a git history of four commits (or no git at all)."""
    shutil.copytree(FIXTURE, dest)
    (dest / "debug.log").write_text("debug output that .gitignore keeps out\n")
    if not history:
        return dest
    git(dest, "init", "-q", "-b", "main")
    for day, (files, message) in enumerate(HISTORY, start=1):
        git(dest, "add", *files)
        git(dest, "commit", "-q", "-m", message, date=f"2026-10-{day:02d}T12:00:00+00:00")
    return dest


@pytest.fixture
def tiny_repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "tinyrepo")


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A byte-level BPE tokenizer trained on the fixture repository, as the scratch path builds it."""
    from knowtune.build.tokenizer import train_bpe

    texts = [p.read_text() for p in FIXTURE.rglob("*") if p.is_file() and p.suffix in (".py", ".md")]
    return train_bpe(texts, vocab_size=800)
