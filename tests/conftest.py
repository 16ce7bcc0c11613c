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
    (["lanterna/keeper.py", "notebooks/oil_usage.ipynb"],
     "Add keepers and their watches, and a notebook of oil use\n\nThe notebook plots litres burnt per night."),
    (["clients"],
     "Add lamp room clients in JavaScript, TypeScript, Go, Java and Rust\n\nThe lamp room controller talks to the store."),
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


@pytest.fixture(autouse=True)
def environment_as_it_was():
    """Every test leaves the process environment as it found it. Dask's Nanny writes OMP_NUM_THREADS=1 (and
    MKL's, OpenBLAS's) into the process that starts a cluster; every knowtune subprocess a later test started
    then ran torch on one thread, so the suite's time and a test's speed depended on what ran before."""
    before = dict(os.environ)
    yield
    if dict(os.environ) != before:
        os.environ.clear()
        os.environ.update(before)


@pytest.fixture
def tiny_repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "tinyrepo")


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A byte-level BPE tokenizer trained on the fixture repository, as the scratch path builds it."""
    from knowtune.examples.tokenizer import train_bpe

    texts = [p.read_text() for p in FIXTURE.rglob("*") if p.is_file() and p.suffix in (".py", ".md")]
    return train_bpe(texts, vocab_size=800)


LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)


def make_pretrained(folder: Path, chat_template: str | None = LLAMA3_TEMPLATE) -> Path:
    """A tiny 'pretrained' model folder as a hub download looks: Llama-3-style special tokens, random weights."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                "<|finetune_right_pad_id|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    texts = [p.read_text() for p in FIXTURE.rglob("*") if p.is_file() and p.suffix in (".py", ".md")]
    bpe.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=700, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|begin_of_text|>",
                                  eos_token="<|eot_id|>" if chat_template else "<|end_of_text|>",
                                  pad_token="<|finetune_right_pad_id|>" if chat_template else None,
                                  extra_special_tokens=specials)
    if chat_template:
        tok.chat_template = chat_template
    tok.save_pretrained(folder)
    import torch

    torch.manual_seed(0)  # the same "pretrained" weights whatever ran before
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         max_position_embeddings=512, bos_token_id=tok.bos_token_id,
                                         eos_token_id=tok.eos_token_id))
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def llama3_tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(make_pretrained(tmp_path_factory.mktemp("llama3")))


COLOURS = ["red", "green", "blue", "white", "amber", "violet"]
TINY_SHAPE = {"hidden_size": 32, "layers": 2, "heads": 2, "intermediate_size": 64}


def make_train_data(folder: Path, tokenizer, n: int = 24, rejected_tail: str = "") -> tuple[Path, Path]:
    """A tokenizer folder and a curated dataset as the curate stage writes them: lamp facts as raw text, QA
    pairs and preference pairs (the right colour chosen, a neighbour's rejected, `rejected_tail` after it),
    a few held out for val."""
    from knowtune.curate.writer import write_dataset
    from knowtune.records import Example

    tokenizer.save_pretrained(folder / "tokenizer")
    examples = []
    for i in range(n):
        colour, wrong = COLOURS[i % len(COLOURS)], COLOURS[(i + 1) % len(COLOURS)]
        split = "val" if i % 6 == 5 else "train"
        question = [{"role": "user", "content": f"What colour is lamp {i}?"}]
        answer = {"role": "assistant", "content": f"Lamp {i} burns {colour}."}
        examples += [
            Example(id=f"raw{i}", kind="raw", document_id=f"d{i}", split=split,
                    text=f"Lamp {i} of the harbour burns {colour} every night."),
            Example(id=f"qa{i}", kind="qa", document_id=f"d{i}", split=split, messages=question + [answer]),
            Example(id=f"pref{i}", kind="preference", document_id=f"d{i}", split=split, prompt=question,
                    chosen=[answer],
                    rejected=[{"role": "assistant", "content": f"Lamp {i} burns {wrong}.{rejected_tail}"}]),
        ]
    write_dataset(examples, folder / "dataset")
    return folder / "dataset", folder / "tokenizer"


# ChatML, except that the generation prompt says "assistant:" where a stored turn says "assistant".
CHATML_LIKE_BROKEN = (
    "{%- for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant:\\n' }}{%- endif %}"
)


TRAIN_SCRIPT = """
import json, sys
from pathlib import Path
from knowtune.config import TrainConfig
from knowtune.distributed import is_main
from knowtune.train.run import run_train
cfg = TrainConfig(**json.loads(sys.argv[1]))
counts = run_train(cfg, Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
if is_main():  # as the CLI does: two ranks printing to one pipe can interleave their lines
    print(json.dumps(counts))
"""


def train_process(cfg: dict, dataset: Path, tokenizer: Path, out: Path, launcher: tuple = ()):
    """run_train in a process of its own (under `launcher`, e.g. torchrun, when given); returns the Popen."""
    import json
    import sys

    script = out.parent / f"{out.name}_train.py"
    out.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(TRAIN_SCRIPT)
    runner = list(launcher) or [sys.executable]
    args = [*runner, str(script), json.dumps(cfg), str(dataset), str(tokenizer), str(out)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})


def finish(proc) -> dict:
    """The counts a train_process printed last, with what it printed before under "printed"."""
    import json

    stdout, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr[-3000:]
    *printed, last = stdout.strip().splitlines()
    return {**json.loads(last), "printed": "\n".join(printed), "warned": stderr}
