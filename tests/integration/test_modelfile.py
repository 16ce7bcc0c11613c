"""The Modelfile's TEMPLATE, rendered by Go's own text/template as Ollama renders it, gives exactly the text the
model's chat template gives in transformers: the prompt Ollama sends is the one the model was trained on."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from knowtune.export.modelfile import match_family, modelfile

RENDER = Path(__file__).parent / "ollama_render" / "main.go"
CONVERSATIONS = [
    [{"role": "user", "content": "Which port does the ledger listen on?"}],
    [{"role": "system", "content": "Answer in one line."}, {"role": "user", "content": "What is BRM-301?"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "What does `MistPlanner` do? {{ not a template }}"}],
    [{"role": "system", "content": "You are the ledger's help desk."}, {"role": "user", "content": "Port?"},
     {"role": "assistant", "content": "7460."}, {"role": "user", "content": "And before v0.2.0?"}],
]


def go_render(template: str, system: str | None, tmp_path: Path) -> list[str]:
    go = shutil.which("go")
    if go is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Go is not installed (apt-get install golang-go); CI must test the Modelfile with it")
        pytest.skip("Go is not installed (apt-get install golang-go)")
    payload = json.dumps({"template": template, "system": system or "", "conversations": CONVERSATIONS})
    env = {**os.environ, "GOCACHE": str(tmp_path / "gocache"), "GOPATH": str(tmp_path / "gopath"),
           "GOFLAGS": "-mod=mod", "GO111MODULE": "off"}
    proc = subprocess.run([go, "run", str(RENDER)], input=payload, capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def parse(text: str) -> tuple[str, str | None]:
    template = re.search(r'TEMPLATE """(.*?)"""', text, re.S).group(1)
    system = re.search(r'SYSTEM """(.*?)"""', text, re.S)
    return template, system.group(1) if system else None


def tokenizers(tmp_path_factory):
    from conftest import FIXTURE, LLAMA3_TEMPLATE, make_pretrained
    from transformers import AutoTokenizer

    from knowtune.chat import with_system_prompt
    from knowtune.examples.tokenizer import train_bpe

    texts = [p.read_text() for p in FIXTURE.rglob("*.md")]
    chatml = train_bpe(texts, 600)
    smol = train_bpe(texts, 600)  # ChatML with a default system message, as SmolLM2's template has it
    smol.chat_template = (
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
        "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
        "{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
    prompted = train_bpe(texts, 600)  # a system prompt knowtune trained in (train.system_prompt)
    prompted.chat_template = with_system_prompt(prompted.chat_template, "Answer as the Brindlemark help desk.")
    llama3 = AutoTokenizer.from_pretrained(make_pretrained(tmp_path_factory.mktemp("l3"), LLAMA3_TEMPLATE))
    return {"chatml": chatml, "chatml-default-system": smol, "chatml-system-prompt": prompted, "llama3": llama3}


@pytest.fixture(scope="module")
def toks(tmp_path_factory):
    return tokenizers(tmp_path_factory)


@pytest.mark.parametrize("name", ["chatml", "chatml-default-system", "chatml-system-prompt", "llama3"])
def test_the_template_renders_in_go_as_the_chat_template_does_in_transformers(name, toks, tmp_path):
    tokenizer = toks[name]
    prompt = "Answer as the Brindlemark help desk." if name == "chatml-system-prompt" else None
    text, said = modelfile("model-q4_k_m.gguf", tokenizer, 512, prompt)
    assert text is not None, said
    assert text.startswith("FROM ./model-q4_k_m.gguf\n") and "PARAMETER num_ctx 512" in text
    stops = re.findall(r'PARAMETER stop "(.*?)"', text)
    assert stops == (["<|eot_id|>"] if name == "llama3" else ["<|im_end|>"])  # the end of turn, nothing else
    template, system = parse(text)
    rendered = go_render(template, system, tmp_path)
    expected = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in CONVERSATIONS]
    assert rendered == expected


def test_a_template_of_another_family_gets_no_modelfile_but_a_reason(toks):
    from conftest import CHATML_LIKE_BROKEN

    broken = toks["chatml"]
    saved = broken.chat_template
    broken.chat_template = CHATML_LIKE_BROKEN
    try:
        assert match_family(broken) is None
        text, said = modelfile("m.gguf", broken, 512)
        assert text is None and "write its TEMPLATE by hand" in said
    finally:
        broken.chat_template = saved
