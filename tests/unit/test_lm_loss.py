"""The fused LM head and cross-entropy gives the loss and gradients of the plain ones."""

import pytest
import torch
import torch.nn.functional as F

from knowtune.train.lm_loss import fused_lm_loss


@pytest.mark.parametrize("weight_trains", [False, True])
def test_loss_and_gradients_equal_the_plain_head_and_cross_entropy(weight_trains):
    torch.manual_seed(0)
    hidden = torch.randn(37, 16, requires_grad=True)
    weight = (torch.randn(300, 16) * 0.3).requires_grad_(weight_trains)
    targets = torch.randint(0, 300, (37,))
    reference = F.cross_entropy(hidden @ weight.T, targets, reduction="sum")
    reference.backward()
    expected = hidden.grad.clone(), (weight.grad.clone() if weight_trains else None)
    hidden.grad = None
    weight.grad = None
    fused = fused_lm_loss(hidden, weight, targets, chunk=8)  # chunks that do not divide the positions
    (2.5 * fused).backward()  # the backward scales by the gradient it is given
    assert fused.item() == pytest.approx(reference.item(), rel=1e-5)
    torch.testing.assert_close(hidden.grad, 2.5 * expected[0], rtol=1e-4, atol=1e-5)
    if weight_trains:
        torch.testing.assert_close(weight.grad, 2.5 * expected[1], rtol=1e-4, atol=1e-5)
    else:
        assert weight.grad is None


def test_under_bfloat16_autocast_it_stays_within_bfloat16_rounding():
    torch.manual_seed(0)
    hidden = torch.randn(64, 32, requires_grad=True)
    weight = torch.randn(500, 32) * 0.2
    targets = torch.randint(0, 500, (64,))
    reference = F.cross_entropy(hidden @ weight.T, targets, reduction="sum")
    (grad,) = torch.autograd.grad(reference, hidden)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fused = fused_lm_loss(hidden, weight, targets)
    (fused_grad,) = torch.autograd.grad(fused, hidden)
    assert fused.item() == pytest.approx(reference.item(), rel=1e-2)
    assert ((fused_grad - grad).norm() / grad.norm()).item() < 2e-2


def test_no_positions_give_zero_and_a_gradient_of_zeros():
    hidden = torch.zeros(0, 8, requires_grad=True)
    loss = fused_lm_loss(hidden, torch.randn(10, 8), torch.zeros(0, dtype=torch.long))
    loss.backward()
    assert loss.item() == 0.0
