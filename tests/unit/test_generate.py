"""Batched generation gives every prompt the answer it gets alone, and stops where it should.

A tiny Llama with random weights (fixed by the seed) and a BPE tokenizer with ChatML: exactness needs no
trained model, only prompts that differ, and one-at-a-time answers from transformers' own `generate` to
compare with. Float32, greedy unless a test says otherwise.
"""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from knowtune.chat import prompt_ids, stop_ids
from knowtune.evaluate.generate import Generation, generate
from knowtune.examples.tokenizer import train_bpe
from knowtune.hardware import torch_threads

TEXTS = [f"Bay {i} in glasshouse {i % 7} reads {20 + i % 13} degrees; the ledger keeps it for {40 + i % 5} days, "
         f"and ventd retries {i % 9} times." for i in range(300)]
BUDGET = 24


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tensors this small are all thread start-up on two cores; one thread keeps the module to seconds.
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe(TEXTS, 800)


def tiny_model(tokenizer, ends_at: int | None = None, positions: int = 1024):
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=positions,
                         initializer_range=0.1, tie_word_embeddings=False, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    model = LlamaForCausalLM(config).eval()
    if ends_at is not None:
        # The end-of-turn token's output row made a little larger than `ends_at`'s: the model now ends its answer
        # where it would have said that token, early for some prompts and never for others.
        with torch.no_grad():
            model.lm_head.weight[tokenizer.eos_token_id] = model.lm_head.weight[ends_at] * 1.01
    return model


def conversations(n: int = 11) -> list[list[dict]]:
    """Prompts from one sentence to about 450 tokens, and one with a system message and an earlier turn."""
    convs = [[{"role": "user", "content": " ".join(TEXTS[i:i + (i * 7) % 23 + 1])}] for i in range(n - 1)]
    convs.append([{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": TEXTS[5]},
                  {"role": "assistant", "content": TEXTS[6]}, {"role": "user", "content": TEXTS[7]}])
    return convs


def alone(model, tokenizer, conversation, max_new_tokens: int = BUDGET) -> Generation:
    """The answer transformers' own generate gives this prompt by itself: no batch, no padding."""
    ids = torch.tensor([prompt_ids(tokenizer, conversation)])
    stops = stop_ids(tokenizer)
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, eos_token_id=stops, pad_token_id=tokenizer.pad_token_id)
    new = out[0, ids.shape[1]:].tolist()
    end = next((k for k, t in enumerate(new) if t in stops), None)
    kept = new if end is None else new[:end]
    return Generation(tokenizer.decode(kept, skip_special_tokens=True), end is not None, len(kept))


@pytest.fixture(scope="module")
def stopping_model(tokenizer):
    """A model that ends some answers within a few tokens and runs others to the budget."""
    free = tiny_model(tokenizer)
    answers = [generate(free, tokenizer, [c], BUDGET, 1)[0] for c in conversations()]
    ids = [tokenizer(a.text, add_special_tokens=False)["input_ids"] for a in answers]
    # A token some answers say early and others never say.
    candidates = [t for t in {t for row in ids for t in row[:6]} if sum(t in row for row in ids) <= len(ids) // 2]
    return tiny_model(tokenizer, ends_at=min(candidates, key=lambda t: min(r.index(t) for r in ids if t in r)))


def test_batched_answers_are_the_answers_each_prompt_gets_alone(tokenizer, stopping_model):
    convs = conversations()
    expected = [alone(stopping_model, tokenizer, c) for c in convs]
    # The mix this test is about: prompts of very different lengths, answers ending early while others run on.
    lengths = [len(prompt_ids(tokenizer, c)) for c in convs]
    assert max(lengths) > 10 * min(lengths)
    assert any(g.stopped and g.new_tokens < BUDGET // 2 for g in expected)
    assert any(not g.stopped and g.new_tokens == BUDGET for g in expected)

    for batch_size in (4, 3, 1):  # 11 prompts: batches that do not divide them, and one at a time
        assert generate(stopping_model, tokenizer, convs, BUDGET, batch_size) == expected


def test_left_padding_does_not_shift_positions(tokenizer):
    # Llama's rotary positions only see distances, so a row shifted by its padding would still pass the test
    # above; GPT-2 learns absolute positions, so its answers change if padding moves them.
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=64, n_layer=2, n_head=4, n_positions=1024,
                                       initializer_range=0.1, bos_token_id=tokenizer.eos_token_id,
                                       eos_token_id=tokenizer.eos_token_id)).eval()
    convs = conversations()
    assert generate(model, tokenizer, convs, BUDGET, 4) == [alone(model, tokenizer, c) for c in convs]


def test_stop_string_spread_over_two_tokens_ends_the_answer_before_it(tokenizer):
    model = tiny_model(tokenizer)
    conv = conversations()[3]
    ids = torch.tensor([prompt_ids(tokenizer, conv)])
    with torch.no_grad():
        new = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=BUDGET, do_sample=False,
                             eos_token_id=stop_ids(tokenizer))[0, ids.shape[1]:].tolist()
    pieces = [tokenizer.decode([t], skip_special_tokens=True) for t in new]  # stop strings match the answer's text
    # The last character of one token and the first of the next: a string no single token holds.
    k = next(k for k in range(2, len(pieces) - 1) if pieces[k].isascii() and pieces[k + 1].isascii()
             and pieces[k].strip() and pieces[k + 1].strip())
    stop = pieces[k][-1] + pieces[k + 1][0]
    assert all(stop not in p for p in pieces)
    full = tokenizer.decode(new, skip_special_tokens=True)
    ends_at = next(m for m in range(1, len(new) + 1) if stop in tokenizer.decode(new[:m], skip_special_tokens=True))  # the token completing it

    got = generate(model, tokenizer, [conv], BUDGET, 1, stop=["never said", stop])[0]
    assert got == Generation(full[:full.find(stop)], stopped=True, new_tokens=ends_at)
    # Batched with other prompts, it stops at the same place.
    others = conversations()
    assert generate(model, tokenizer, [others[0], conv, others[7]], BUDGET, 2, stop=["never said", stop])[1] == got


def test_sampling_with_a_seed_is_reproducible_whatever_the_batch(tokenizer):
    model = tiny_model(tokenizer)
    convs = conversations()

    def sample(seed, batch_size):
        return generate(model, tokenizer, convs, BUDGET, batch_size, temperature=1.0, top_p=0.95, seed=seed)

    first = sample(7, 4)
    assert sample(7, 4) == first
    assert sample(7, 3) == first  # each conversation draws from its own stream
    assert [g.text for g in sample(8, 4)] != [g.text for g in first]
    assert [g.text for g in first] != [g.text for g in generate(model, tokenizer, convs, BUDGET, 4)]


def test_a_tiny_top_p_keeps_only_the_most_likely_token(tokenizer):
    model = tiny_model(tokenizer)
    convs = conversations(5)
    assert generate(model, tokenizer, convs, BUDGET, 2, temperature=1.0, top_p=1e-9, seed=3) == generate(
        model, tokenizer, convs, BUDGET, 2)


def test_answers_never_exceed_max_new_tokens_nor_the_models_positions(tokenizer):
    convs = conversations(6)
    for budget in (1, 5):
        for g in generate(tiny_model(tokenizer), tokenizer, convs, budget, 4):
            assert g.new_tokens == budget if not g.stopped else g.new_tokens < budget
    long = [{"role": "user", "content": " ".join(TEXTS[:20])}]
    room = 512 - len(prompt_ids(tokenizer, long))
    assert 0 < room < BUDGET
    got = generate(tiny_model(tokenizer, positions=512), tokenizer, [long, convs[0]], BUDGET, 2)
    assert got[0].new_tokens <= room and got[1].new_tokens <= BUDGET


def test_no_conversations_no_answers(tokenizer):
    assert generate(tiny_model(tokenizer), tokenizer, [], BUDGET, 4) == []
