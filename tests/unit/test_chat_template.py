import copy

import pytest

from knowtune.records import Example
from knowtune.chat import IGNORE, MaskError, encode_chat, encode_example, prompt_ids

CONV = [
    {"role": "system", "content": "You know the lighthouse."},
    {"role": "user", "content": "How much oil is the reserve?"},
    {"role": "assistant", "content": "Twelve litres."},
    {"role": "user", "content": "And wicks?"},
    {"role": "assistant", "content": "No reserve for wicks."},
]


def trained_text(tokenizer, ids, labels):
    return tokenizer.decode([t for t, lab in zip(ids, labels) if lab != IGNORE])


def test_only_assistant_replies_and_their_end_of_turn_are_trained(tiny_tokenizer):
    ex = Example(id="e", kind="instruction", document_id="d", messages=CONV)
    row = encode_example(tiny_tokenizer, ex)
    assert trained_text(tiny_tokenizer, row["input_ids"], row["labels"]) == (
        "Twelve litres.<|im_end|>No reserve for wicks.<|im_end|>"
    )
    eos = tiny_tokenizer.eos_token_id
    assert row["labels"].count(eos) == 2  # EOS is trained, once per reply
    assert tiny_tokenizer.pad_token_id != eos


def test_raw_text_is_trained_on_every_token_and_ends_with_a_document_boundary(tiny_tokenizer):
    row = encode_example(tiny_tokenizer, Example(id="r", kind="raw", document_id="d", text="def f():\n    pass\n"))
    assert row["labels"] == row["input_ids"]
    assert tiny_tokenizer.decode(row["input_ids"][-1:]) == "<|endoftext|>"


def test_control_tokens_written_in_text_stay_text(tiny_tokenizer):
    sneaky = "CHATML ends a turn with <|im_end|> and starts one with <|im_start|>"
    raw = encode_example(tiny_tokenizer, Example(id="r", kind="raw", document_id="d", text=sneaky))
    chat = encode_example(tiny_tokenizer, Example(
        id="c", kind="instruction", document_id="d",
        messages=[{"role": "user", "content": sneaky}, {"role": "assistant", "content": sneaky}]))
    specials = {tiny_tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|im_start|>")}
    assert not specials & set(raw["input_ids"][:-1])
    # The template's own control tokens: 2 per message; none from the content.
    assert sum(t in specials for t in chat["input_ids"]) == 4


def test_a_template_that_renders_prefixes_differently_is_refused(tiny_tokenizer):
    odd = copy.deepcopy(tiny_tokenizer)
    # Puts the number of messages in front: a prefix renders differently from the whole.
    odd.chat_template = "{{ messages|length }}{% for m in messages %}{{ m['content'] }}<|im_end|>{% endfor %}"
    with pytest.raises(MaskError):
        encode_chat(odd, CONV)


@pytest.mark.parametrize("name", ["tiny_tokenizer", "llama3_tokenizer"], ids=["chatml", "llama3"])
def test_inference_prompts_are_exactly_the_start_of_the_trained_sequence(name, request):
    tokenizer = request.getfixturevalue(name)
    ids, mask = encode_chat(tokenizer, CONV)
    for i, m in enumerate(CONV):
        if m["role"] == "assistant":
            prompt = prompt_ids(tokenizer, CONV[:i])
            assert ids[: len(prompt)] == prompt
            assert mask[len(prompt)] == 1 and not any(mask[: len(prompt)][-3:])


def test_llama3_template_trains_replies_and_eot_only(llama3_tokenizer):
    ids, mask = encode_chat(llama3_tokenizer, CONV)
    trained = llama3_tokenizer.decode([t for t, m in zip(ids, mask) if m])
    assert trained == "Twelve litres.<|eot_id|>No reserve for wicks.<|eot_id|>"


def test_a_system_prompt_in_the_template_is_rendered_but_not_trained(tmp_path):
    from conftest import make_pretrained
    from knowtune.examples.tokenizer import run_tokenizer
    from knowtune.chat import render
    from knowtune.config import TokenizerConfig
    from knowtune.settings import TokenizerSettings
    from transformers import AutoTokenizer

    prompt = 'You are "Keeper" {{ not a jinja block }}\nAnswer briefly.'
    settings = TokenizerSettings(base_model=str(make_pretrained(tmp_path / "base")), system_prompt=prompt,
                                 tokenizer=TokenizerConfig())
    run_tokenizer(settings, tmp_path, tmp_path / "base", tmp_path / "tok")
    tok = AutoTokenizer.from_pretrained(tmp_path / "tok")  # as eval, export and serve load it
    chat = [{"role": "user", "content": "Which lamp burns red?"}, {"role": "assistant", "content": "Lamp 0."}]
    text = render(tok, chat, add_generation_prompt=False)
    assert text.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n" + prompt)
    ids, mask = encode_chat(tok, chat)
    assert tok.decode([t for t, m in zip(ids, mask) if m]) == "Lamp 0.<|eot_id|>"
    # a conversation that brings its own system message keeps it, and gets no second one
    own = [{"role": "system", "content": "Be terse."}] + chat
    assert prompt not in render(tok, own, add_generation_prompt=False)
    assert prompt_ids(tok, chat[:1]) == ids[: len(prompt_ids(tok, chat[:1]))]
