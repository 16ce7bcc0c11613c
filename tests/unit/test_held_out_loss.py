"""The held-out loss scores exactly the trained tokens of each row, whatever the batch and the head's path."""

import math

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from knowtune.chat import IGNORE
from knowtune.evaluate.perplexity import mean_loss, row_losses
from knowtune.train.lm_loss import fusable_head


def model(softcap: bool = False):
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         tie_word_embeddings=False, initializer_range=0.2)
    m = LlamaForCausalLM(config).eval()
    if softcap:  # a head whose logits the model changes after the product: scored from the model's own logits
        m.config.logit_scale = 0.5
        forward = m.forward

        def scaled(*args, **kwargs):
            out = forward(*args, **kwargs)
            out.logits = out.logits * 0.5
            return out
        m.forward = scaled
    return m


def rows(n: int = 7) -> list[dict]:
    g = torch.Generator().manual_seed(1)
    out = []
    for i in range(n):
        length = 5 + 9 * i % 40
        ids = torch.randint(3, 300, (length,), generator=g).tolist()
        prompt = i % 3 * 2  # some rows train every token, others only after a prompt
        out.append({"input_ids": ids, "labels": [IGNORE] * prompt + ids[prompt:]})
    return out


def alone(m, row) -> tuple[float, int]:
    """The row by itself, through the model's full logits and the plain cross-entropy."""
    ids = torch.tensor([row["input_ids"]])
    labels = torch.tensor([row["labels"]])[:, 1:]
    with torch.no_grad():
        logits = m(input_ids=ids).logits[:, :-1].float()
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                            ignore_index=IGNORE, reduction="sum")
    return float(nll), int((labels != IGNORE).sum())


@pytest.mark.parametrize("softcap", [False, True])
def test_each_rows_loss_is_what_it_gets_alone_in_any_batch(softcap):
    m, data = model(softcap), rows()
    assert (fusable_head(m) is None) == softcap  # both paths: the head run on scored positions, and the logits
    expected = [alone(m, r) for r in data]
    for batch_size in (1, 3, 16):
        got = row_losses(m, data, batch_size, pad_id=0)
        assert [n for _, n in got] == [n for _, n in expected]
        for (a, _), (b, _) in zip(got, expected):
            assert a == pytest.approx(b, rel=1e-5)
    total = sum(t for t, _ in expected) / sum(n for _, n in expected)
    assert mean_loss(row_losses(m, data, 4, pad_id=0)) == pytest.approx(total, rel=1e-5)
    assert math.isnan(mean_loss([]))


def test_scored_positions_are_taken_in_chunks():
    # far more scored positions than a chunk of 7 holds: the chunks together give what one pass gives
    m, data = model(), rows()
    whole = row_losses(m, data, 8, pad_id=0)
    for (a, n), (b, k) in zip(row_losses(m, data, 8, pad_id=0, chunk=7), whole):
        assert n == k and a == pytest.approx(b, rel=1e-6)
