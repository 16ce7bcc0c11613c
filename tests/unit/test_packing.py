"""Packing: examples in one row must not see each other, so each one's logits equal those it gets alone."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from knowtune.train import attention
from knowtune.chat import IGNORE
from knowtune.train.packing import Collator, pack
from knowtune.train.trainers import CountingCollator, trained_tokens_loss


def tiny_model(attention: str):
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                        attn_implementation=attention)).eval()


def rows():
    g = torch.Generator().manual_seed(1)
    out = []
    for n in (11, 7, 5, 9, 3):
        ids = torch.randint(1, 97, (n,), generator=g).tolist()
        out.append({"input_ids": ids, "labels": list(ids)})
    return out


def test_pack_fills_rows_first_fit_decreasing_and_keeps_every_token():
    packed = pack(rows(), max_length=16)
    assert [r["seq_lens"] for r in packed] == [[11, 5], [7, 9], [3]]
    assert sorted(n for r in packed for n in r["seq_lens"]) == [3, 5, 7, 9, 11]
    for r in packed:
        starts = [sum(r["seq_lens"][:k]) for k in range(len(r["seq_lens"]))]
        assert all(r["labels"][s] == IGNORE for s in starts)  # no example predicts the next one's first token
        assert len(r["input_ids"]) == len(r["labels"]) == sum(r["seq_lens"]) <= 16


def test_an_example_longer_than_a_row_is_refused():
    with pytest.raises(ValueError, match="does not fit max_length 8"):
        pack(rows(), max_length=8)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_every_packed_example_gets_the_logits_it_gets_alone(attention):
    model = tiny_model(attention)
    examples = rows()
    packed = pack(examples, max_length=16)
    batch = Collator(pad_id=0, additive=attention == "eager")(packed)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       position_ids=batch["position_ids"]).logits
    by_ids = {tuple(e["input_ids"]): e for e in examples}
    checked = 0
    for r, row in enumerate(packed):
        start = 0
        for n in row["seq_lens"]:
            ids = row["input_ids"][start:start + n]
            assert tuple(ids) in by_ids
            with torch.no_grad():
                alone = model(input_ids=torch.tensor([ids])).logits[0]
            assert (logits[r, start:start + n] - alone).abs().max() < 1e-5
            start += n
            checked += 1
    assert checked == len(examples)


def test_flattened_examples_attending_one_at_a_time_get_the_logits_they_get_alone():
    model = tiny_model("sdpa")  # 4 query heads on 2 key-value heads: the grouped path too
    examples = rows()
    packed = pack(examples, max_length=16)
    batch = Collator(pad_id=0, flat=True)(packed)
    assert batch["input_ids"].shape == (1, sum(len(e["input_ids"]) for e in examples))  # no padding at all
    assert "attention_mask" not in batch
    with torch.no_grad(), attention.using(model, attention.NAME):
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[0]
    bounds = batch["cu_seq_lens_q"].tolist()
    for start, end in zip(bounds, bounds[1:]):
        with torch.no_grad():
            alone = model(input_ids=batch["input_ids"][:, start:end]).logits[0]
        assert (logits[start:end] - alone).abs().max() < 1e-5
    assert len(bounds) - 1 == len(examples)


def test_the_loss_on_trained_positions_only_is_the_models_loss():
    from knowtune.train.lm_loss import fused_lm_loss

    model = tiny_model("sdpa")
    examples = rows()
    examples[0]["labels"][:6] = [IGNORE] * 6  # a prompt: its positions are not scored
    packed = pack(examples, max_length=16)
    count = sum(sum(1 for t in e["labels"][1:] if t != IGNORE) for e in examples)
    with torch.no_grad():
        reference = model(**Collator(pad_id=0)(packed)).loss  # 4D masks, the full LM head, the model's own loss
        full = Collator(pad_id=0)(packed)
        labels = full.pop("labels")
        unshifted, n = trained_tokens_loss(model(**full), labels)  # every position's logits, shifted here
        assert n == count and abs(unshifted / n - reference) < 1e-5
        batch = CountingCollator(pad_id=0, flat=True, keep_logits=True)(packed)
        batch.pop("real_tokens")
        labels = batch.pop("labels")
        with attention.using(model, attention.NAME):
            outputs = model(**batch)
            kept, n = trained_tokens_loss(outputs, labels)
            # the fused head: the decoder's hidden states and the head's weight, chunk by chunk
            del batch["logits_to_keep"]
            hidden = model.get_decoder()(**batch).last_hidden_state
        scored = labels[:, 1:] != IGNORE
        fused = fused_lm_loss(hidden[:, :-1][scored], model.get_output_embeddings().weight, labels[:, 1:][scored],
                              chunk=5)
    assert outputs.logits.shape[1] == count  # the head ran on the scored positions only
    assert n == count and abs(kept / n - reference) < 1e-5 and abs(fused / count - reference) < 1e-5


def test_the_model_attends_with_its_own_implementation_outside_training():
    model = tiny_model("sdpa")
    with attention.using(model, attention.NAME):
        assert model.config._attn_implementation == attention.NAME
        with pytest.raises(ValueError, match="cu_seq_lens_q missing"):
            model(input_ids=torch.tensor([[1, 2, 3]]))
    assert model.config._attn_implementation == "sdpa"
    model(input_ids=torch.tensor([[1, 2, 3]]))


def test_only_plain_causal_sdpa_models_attend_one_example_at_a_time():
    assert attention.packed_kernel(tiny_model("sdpa"), "sdpa", 512) == attention.NAME
    assert attention.packed_kernel(tiny_model("eager"), "eager", 512) is None  # eager keeps its additive 4D mask
    assert attention.packed_kernel(tiny_model("sdpa"), "flash_attention_2", 512) == "flash_attention_2"
    windowed = tiny_model("sdpa")
    windowed.config.sliding_window = 256  # a window shorter than a row: the per-example kernel would ignore it
    assert attention.packed_kernel(windowed, "sdpa", 512) is None
    assert attention.packed_kernel(windowed, "sdpa", 128) == attention.NAME


def test_position_ids_alone_do_not_isolate_examples():
    """Why the block-diagonal mask exists: without it the second example sees the first."""
    model = tiny_model("sdpa")
    a, b = rows()[0]["input_ids"], rows()[1]["input_ids"]
    positions = torch.tensor([list(range(len(a))) + list(range(len(b)))])
    with torch.no_grad():
        joined = model(input_ids=torch.tensor([a + b]), position_ids=positions).logits[0, len(a):]
        alone = model(input_ids=torch.tensor([b])).logits[0]
    assert (joined - alone).abs().max() > 1e-3


def test_the_packed_loss_is_the_loss_of_the_examples_run_alone():
    model = tiny_model("sdpa")
    examples = rows()
    batch = Collator(pad_id=0)(pack(examples, max_length=16))
    with torch.no_grad():
        packed_loss = model(**batch).loss
        total = count = 0
        for e in examples:
            n = len(e["input_ids"]) - 1  # tokens predicted
            total += model(input_ids=torch.tensor([e["input_ids"]]), labels=torch.tensor([e["labels"]])).loss * n
            count += n
    assert abs(packed_loss - total / count) < 1e-5


def test_unpacked_rows_are_padded_to_the_longest_with_padding_out_of_the_loss():
    batch = Collator(pad_id=0)(rows()[:2])
    assert batch["input_ids"].shape == (2, 11)
    assert batch["attention_mask"].tolist()[1] == [1] * 7 + [0] * 4
    assert batch["labels"][1, 7:].tolist() == [IGNORE] * 4
