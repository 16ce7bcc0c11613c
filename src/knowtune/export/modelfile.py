"""An Ollama Modelfile whose TEMPLATE renders exactly what the model was trained on.

Ollama recognises only the chat templates it knows; a fine-tune given as a bare `FROM x.gguf` gets a
template that is not its own and answers in gibberish (unsloth #449, LLaMA-Factory #6020, ollama #6823). The
TEMPLATE is therefore written out, in Go's text/template, for the chat formats knowtune trains: ChatML (its
own models), ChatML with a default system message (SmolLM2, Qwen), and Llama 3. Which one a model's Jinja
template is, is not guessed from its text: each candidate is rendered here (as Ollama would render the Go
template) for a few conversations and compared with the Jinja template's own output; only an exact match
is written. The tests render the TEMPLATE with Go itself and compare again.

Ollama passes the Go template `.Messages` (every message, a system one included; Ollama puts the Modelfile's
SYSTEM first when a request has none) and `.System` (the system messages' text, joined).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

PROBES = [
    [{"role": "user", "content": "Which port does the ledger use?"}],
    [{"role": "system", "content": "Answer in one line."}, {"role": "user", "content": "Hello"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "What is 2 + 2?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."},
     {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Another?"}],
]


@dataclass(frozen=True)
class Family:
    name: str
    template: str  # the Go template
    render: Callable[[list[dict], str | None], str]  # what Ollama makes of it, given the default system message
    stops: tuple[str, ...]


def _chatml(messages: list[dict], default_system: str | None) -> str:
    out = ""
    if default_system is not None and not any(m["role"] == "system" for m in messages):
        out += f"<|im_start|>system\n{default_system}<|im_end|>\n"
    out += "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return out + "<|im_start|>assistant\n"


CHATML_GO = ("{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
             "<|im_start|>assistant\n")


def _chatml_default_go(default_system: str) -> str:
    # The default system message when the conversation brings none, as SmolLM2's Jinja template does.
    return ("{{- if not .System }}<|im_start|>system\n" + _go_text(default_system) + "<|im_end|>\n{{ end }}"
            + CHATML_GO)


def _llama3(messages: list[dict], default_system: str | None) -> str:
    # Llama 3's Jinja template trims each message; Ollama's templates have no trim function, so a message
    # with spaces around it renders with them there (the probes have none)
    out = "<|begin_of_text|>"
    out += "".join(f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{m['content']}<|eot_id|>" for m in messages)
    return out + "<|start_header_id|>assistant<|end_header_id|>\n\n"


LLAMA3_GO = ("<|begin_of_text|>{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
             "{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n")


def _go_text(text: str) -> str:
    """Literal text inside a Go template: only "{{" needs escaping."""
    return text.replace("{{", '{{ "{{" }}')


def families(default_system: str | None) -> list[Family]:
    out = [Family("chatml", CHATML_GO, _chatml, ("<|im_end|>",)),
           Family("llama3", LLAMA3_GO, _llama3, ("<|eot_id|>",))]
    if default_system is not None:
        out.insert(0, Family("chatml-default-system", _chatml_default_go(default_system), _chatml, ("<|im_end|>",)))
    return out


def default_system_of(tokenizer) -> str | None:
    """The system message the Jinja template adds when a conversation has none (SmolLM2's), or None."""
    text = tokenizer.apply_chat_template(PROBES[0], add_generation_prompt=True, tokenize=False)
    head = "<|im_start|>system\n"
    if head in text and text.index(head) < text.find("<|im_start|>user"):
        start = text.index(head) + len(head)
        return text[start:text.index("<|im_end|>", start)]
    return None


def match_family(tokenizer) -> Family | None:
    """The family whose rendering equals the model's own Jinja template on every probe, or None."""
    default = default_system_of(tokenizer)
    for family in families(default):
        used = default if family.name == "chatml-default-system" else None
        if all(family.render(p, used) == tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False)
               for p in PROBES):
            return family
    return None


def modelfile(gguf_name: str, tokenizer, context: int, system_prompt: str | None = None) -> tuple[str | None, str]:
    """(the Modelfile, or None when the chat template is none knowtune can write for Ollama; what was done)."""
    family = match_family(tokenizer)
    if family is None:
        return None, ("no Modelfile: the chat template is not one knowtune writes for Ollama (ChatML, ChatML with "
                      "a default system message, Llama 3); write its TEMPLATE by hand")
    lines = [f"FROM ./{gguf_name}", f'TEMPLATE """{family.template}"""']
    lines += [f'PARAMETER stop "{s}"' for s in family.stops]
    # Ollama's default context is short, and it cuts longer prompts without a word
    lines.append(f"PARAMETER num_ctx {context}")
    if system_prompt:
        lines.append(f'SYSTEM """{system_prompt}"""')
    return "\n".join(lines) + "\n", f"Modelfile with the {family.name} template"
