"""Chat rendering for training and inference, and the loss mask of a conversation.

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

from typing import Any

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
    end = tokenizer.convert_tokens_to_ids(DOC_END) if DOC_END in tokenizer.get_vocab() else tokenizer.eos_token_id
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


def _stop_ids(tokenizer: Any) -> set[int]:
    ids = {tokenizer.eos_token_id}
    vocab = tokenizer.get_vocab()
    for token in ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", DOC_END):
        if token in vocab:
            ids.add(vocab[token])
    return {i for i in ids if i is not None}


def _is_blank(tokenizer: Any, token_id: int) -> bool:
    return tokenizer.decode([token_id]).strip() == ""
