"""The run's tokenizer and chat format, shared by every stage that turns messages into tokens.

Build counts tokens with it, curate measures lengths with it, train encodes
examples with it, evaluate and serve render prompts with it: one module, so
a prompt at inference is rendered exactly as the conversation was in
training, and no stage imports another stage's code to get it.

Chat rendering for training and inference, and the loss mask of a conversation.

The mask is found by rendering the conversation prefix by prefix: the text an
assistant turn adds after the generation prompt is what is trained. That works
for any template, with or without `{% generation %}` markers.

Token ids are made piece by piece, cutting the rendered text where messages
begin and end. An inference prompt ends at such a cut (right after the
generation prompt), so the ids of a prompt are exactly the start of the ids
the model trained on, whatever the tokenizer merges across the cut; and a
control token typed inside a message stays text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .records import Example

# ChatML, for models knowtune builds from scratch. An end-of-turn token that is
# the EOS token makes generation stop where training taught the turn to end.
CHATML = (
    "{%- for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}"
)
CHATML_TOKENS = {"bos": None, "eos": "<|im_end|>", "pad": "<|pad|>", "extra": ["<|im_start|>", "<|endoftext|>"]}
DOC_END = "<|endoftext|>"  # ends a raw-text example: a document boundary, not an end of turn

IGNORE = -100


def with_system_prompt(template: str, prompt: str) -> str:
    """The template, rendering `prompt` as the system message of a conversation that has none."""
    import json

    # json.dumps gives a valid Jinja string literal for any prompt (quotes, newlines, braces).
    return ("{%- if not messages or messages[0]['role'] != 'system' %}"
            "{%- set messages = [{'role': 'system', 'content': " + json.dumps(prompt) + "}] + messages %}"
            "{%- endif %}" + template)


class MaskError(ValueError):
    """The chat template renders a prefix differently from the whole conversation."""


def encode_chat(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    """Token ids of a conversation and a 0/1 mask of the tokens to train (assistant replies and their end)."""
    text = render(tokenizer, messages, add_generation_prompt=False)
    trained = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render(tokenizer, messages[:i], add_generation_prompt=True)
        through = render(tokenizer, messages[: i + 1], add_generation_prompt=False)
        if not (text.startswith(before) and text.startswith(through) and len(before) <= len(through)):
            raise MaskError(
                "the chat template does not render the start of a conversation the same way on its own, "
                "so the assistant's tokens cannot be located; use a template whose output grows turn by turn"
            )
        trained.append((len(before), len(through)))
    ids, mask = _encode_pieces(tokenizer, text, messages, trained)
    _untrain_trailing_blanks(tokenizer, ids, mask)
    return ids, mask


def encode_text(tokenizer: Any, text: str) -> list[int]:
    """Raw text as the model trains on it: special-token look-alikes in the text stay text."""
    ids = tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    end = token_id(tokenizer, DOC_END)
    end = tokenizer.eos_token_id if end is None else end
    return ids + [end]


def prompt_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """Token ids that ask the model for the next assistant turn, cut as in training."""
    text = render(tokenizer, messages, add_generation_prompt=True)
    return _encode_pieces(tokenizer, text, messages, [])[0]


def stop_ids(tokenizer: Any) -> list[int]:
    return sorted(_stop_ids(tokenizer))


def render(tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
    if not messages and not add_generation_prompt:
        return ""
    try:
        return tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=False)
    except Exception:
        if messages:  # some templates refuse an empty conversation; it renders as nothing
            raise
        return ""


def _encode_pieces(tokenizer: Any, text: str, messages: list[dict[str, str]],
                   trained: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    contents = _content_spans(text, messages)
    cuts = sorted({0, len(text), *(p for span in contents + trained for p in span)})
    ids: list[int] = []
    mask: list[int] = []
    for a, b in zip(cuts, cuts[1:]):
        if a == b:
            continue
        in_content = any(ca <= a and b <= cb for ca, cb in contents)
        piece = tokenizer(text[a:b], add_special_tokens=False, split_special_tokens=in_content)["input_ids"]
        ids += piece
        mask += [int(any(ta <= a and b <= tb for ta, tb in trained))] * len(piece)
    return ids, mask


def _content_spans(text: str, messages: list[dict[str, str]]) -> list[tuple[int, int]]:
    """Where each message's content sits in the rendered text (templates may trim it)."""
    spans, pos = [], 0
    for message in messages:
        content = message["content"].strip()
        if not content:
            continue
        k = text.find(content, pos)
        if k < 0:
            continue
        spans.append((k, k + len(content)))
        pos = k + len(content)
    return spans


def _untrain_trailing_blanks(tokenizer: Any, ids: list[int], mask: list[int]) -> None:
    """Train the end-of-turn token, not the template's whitespace after it."""
    stops = _stop_ids(tokenizer)
    for j in range(len(ids) - 1, -1, -1):
        ends_run = mask[j] and (j + 1 == len(ids) or not mask[j + 1])
        k = j
        while ends_run and k >= 0 and mask[k] and ids[k] not in stops and _is_blank(tokenizer, ids[k]):
            mask[k] = 0
            k -= 1


TURN_ENDS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>")


def turn_end_ids(tokenizer: Any) -> set[int]:
    """EOS and the end-of-turn tokens of the common chat formats: what a reply is trained to end with."""
    ids = {tokenizer.eos_token_id} | {token_id(tokenizer, t) for t in TURN_ENDS}
    return {i for i in ids if i is not None}


def _stop_ids(tokenizer: Any) -> set[int]:
    # Generation also stops at a document's end, which raw-text examples are trained to end with.
    return {i for i in turn_end_ids(tokenizer) | {token_id(tokenizer, DOC_END)} if i is not None}


def token_id(tokenizer: Any, token: str) -> int | None:
    """The id of one token, or None when the vocabulary has no such token.

    Not `token in tokenizer.get_vocab()`: that copies the whole vocabulary into a dict each time (45 ms for
    SmolLM2's 49,152 tokens), and encoding one chat example asked twice."""
    found = tokenizer.convert_tokens_to_ids(token)
    if found is None or tokenizer.convert_ids_to_tokens(found) != token:  # an unknown token comes back as unk
        return None
    return found


def _is_blank(tokenizer: Any, token_id: int) -> bool:
    return tokenizer.decode([token_id]).strip() == ""


# --- examples as the model trains on them ------------------------------------
# Curate counts tokens with this same function, so a length filter measures exactly the sequence training sees.


def load_tokenizer(folder: Path):
    """The tokenizer the tokenizer stage saved (with its chat template)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def encode_example(tokenizer: Any, example: Example) -> dict[str, list[int]]:
    """Token ids and labels of an example, untrained tokens masked with IGNORE."""
    if example.kind == "raw":
        ids = encode_text(tokenizer, example.text or "")
        return {"input_ids": ids, "labels": list(ids)}
    if example.kind in ("instruction", "qa"):
        ids, mask = encode_chat(tokenizer, example.messages or [])
        return {"input_ids": ids, "labels": [t if m else IGNORE for t, m in zip(ids, mask)]}
    if example.kind == "preference":
        # Counted as prompt + chosen reply; preference trainers tokenise the pair themselves.
        ids, mask = encode_chat(tokenizer, (example.prompt or []) + (example.chosen or []))
        return {"input_ids": ids, "labels": [t if m else IGNORE for t, m in zip(ids, mask)]}
    raise ValueError(f"example {example.id}: unknown kind {example.kind!r}")


def question_of(example: Example) -> str | None:
    """The last user message of a chat example: what a held-out question is compared by."""
    messages = example.messages or example.prompt or []
    users = [m["content"] for m in messages if m["role"] == "user"]
    return users[-1] if users else None


def answer_of(example: Example) -> str | None:
    messages = example.messages or []
    replies = [m["content"] for m in messages if m["role"] == "assistant"]
    return replies[-1] if replies else None
