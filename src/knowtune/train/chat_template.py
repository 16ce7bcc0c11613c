"""Chat rendering for training and inference, and the loss mask of a conversation.

The mask is found by rendering the conversation prefix by prefix: the tokens an
assistant turn adds after the generation prompt are the ones trained. That works
for any template, with or without `{% generation %}` markers, and it is the same
template call inference makes, so training and inference cannot drift apart.
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


class MaskError(ValueError):
    """The chat template renders a prefix differently from the whole conversation."""


def encode_chat(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    """Token ids of a conversation and a 0/1 mask of the tokens to train (assistant replies and their end)."""
    full = _ids(tokenizer, messages, add_generation_prompt=False)
    mask = [0] * len(full)
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = _ids(tokenizer, messages[:i], add_generation_prompt=True) if i else _gen_prompt_only(tokenizer)
        through = _ids(tokenizer, messages[: i + 1], add_generation_prompt=False)
        if full[: len(before)] != before or full[: len(through)] != through:
            raise MaskError(
                "the chat template does not render a conversation's beginning the same way on its own; "
                "assistant tokens cannot be located"
            )
        end = len(through)
        # Train the end-of-turn token, not the template's whitespace after it.
        while end > len(before) and full[end - 1] not in _stop_ids(tokenizer) and _is_blank(tokenizer, full[end - 1]):
            end -= 1
        for j in range(len(before), end):
            mask[j] = 1
    return full, mask


def encode_text(tokenizer: Any, text: str) -> list[int]:
    """Raw text as the model trains on it: special-token look-alikes in the text stay text."""
    ids = tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    end = tokenizer.convert_tokens_to_ids(DOC_END) if DOC_END in tokenizer.get_vocab() else tokenizer.eos_token_id
    return ids + [end]


def prompt_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """Token ids that ask the model for the next assistant turn."""
    return _ids(tokenizer, messages, add_generation_prompt=True)


def stop_ids(tokenizer: Any) -> list[int]:
    return sorted(_stop_ids(tokenizer))


def _ids(tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool) -> list[int]:
    # sanitize_control_tokens: a "<|im_end|>" written in a message (knowtune's own
    # source has some) is encoded as text, never as the control token.
    out = tokenizer.apply_chat_template(
        messages, add_generation_prompt=add_generation_prompt, tokenize=True, return_dict=True,
        sanitize_control_tokens=True,
    )
    return list(out["input_ids"])


def _gen_prompt_only(tokenizer: Any) -> list[int]:
    text = tokenizer.apply_chat_template([], add_generation_prompt=True, tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


def _stop_ids(tokenizer: Any) -> set[int]:
    ids = {tokenizer.eos_token_id}
    vocab = tokenizer.get_vocab()
    for token in ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", DOC_END):
        if token in vocab:
            ids.add(vocab[token])
    return {i for i in ids if i is not None}


def _is_blank(tokenizer: Any, token_id: int) -> bool:
    return tokenizer.decode([token_id]).strip() == ""
