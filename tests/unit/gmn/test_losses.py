"""Rendering loss and SigLIP against hand computations."""
import math

import pytest
import torch

from nfws.gmn.losses import SigLIP, rendering_loss, siglip_loss, uses_contrast, uses_rendering


def test_rendering_loss_weights_foreground_and_background_by_hand():
    target = torch.zeros(2, 3, 3)
    pred = torch.tensor([[[0.5, 0.5, 0.5],     # fg ray, |d| = 0.5 -> 0.5 * 0.25 = 0.125 per channel
                          [2.0, 0.0, 0.0],     # fg ray, |d| = 2 -> 2 - 0.5 = 1.5 on one channel
                          [0.0, 0.0, 0.5]],    # bg ray, 0.125 on one channel
                         [[0.5, 0.5, 0.5],     # second NeRF: all background
                          [0.0, 0.0, 0.0],
                          [0.0, 0.0, 0.0]]])
    alpha = torch.tensor([[0.9, 0.6, 0.1], [0.0, 0.2, 0.4]])
    first = 0.8 * (0.125 + 1.5 / 3) / 2 + 0.2 * (0.125 / 3)
    second = 0.8 * 0.0 + 0.2 * (0.125 / 3)
    got = rendering_loss(pred, target, alpha, fg_threshold=0.5)
    assert got.item() == pytest.approx((first + second) / 2, rel=1e-6)


def test_rendering_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shapes"):
        rendering_loss(torch.zeros(1, 4, 3), torch.zeros(1, 4, 3), torch.zeros(1, 5))


def test_siglip_two_by_two_by_hand():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([[2.0, 0.0], [0.6, 0.8]])           # row 0 normalises to (1, 0)
    log_t, b = torch.tensor(math.log(10.0)), torch.tensor(-10.0)
    # logits = 10 * [[1, 0.6], [0, 0.8]] - 10 = [[0, -4], [-10, -2]]; positives on the diagonal
    log_sig = lambda v: -math.log1p(math.exp(-v))
    expected = -(log_sig(0.0) + log_sig(4.0) + log_sig(10.0) + log_sig(-2.0)) / 2
    got = siglip_loss(x, y, torch.eye(2, dtype=torch.bool), log_t, b)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_siglip_module_compares_first_members_with_second_members():
    # pairs (a, a) and (b, b): first members rows 0 and 2, second members rows 1 and 3
    emb = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [0.0, 3.0]], requires_grad=True)
    loss_fn = SigLIP()
    loss = loss_fn(emb, ["a", "a", "b", "b"])
    # first (1, 0), (0, 1); second (0.6, 0.8), (0, 1): cos = [[0.6, 0], [0.8, 1]] ->
    # logits 10 cos - 10 = [[-4, -10], [-2, 0]]; positives on the diagonal, negatives flip
    # sign; rows 0 and 2 (both first members) are never compared with each other
    log_sig = lambda v: -math.log1p(math.exp(-v))
    expected = -(log_sig(-4.0) + log_sig(10.0) + log_sig(2.0) + log_sig(0.0)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert loss_fn.log_t.grad.abs() > 0 and loss_fn.bias.grad.abs() > 0
    # the same object on both sides twice: every a-b pair of that object is a positive
    twice = loss_fn(torch.eye(4), ["a", "a", "a", "a"])
    expected = -4 * math.log(1 / (1 + math.exp(10.0))) / 2      # cos 0 -> logit -10, all positive
    assert twice.item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="item 2 holds object 'b' but its pair partner holds 'c'"):
        loss_fn(emb, ["a", "a", "b", "c"])
    with pytest.raises(ValueError, match="batch of pairs"):
        loss_fn(emb[:3], ["a", "a", "b"])


def test_variants():
    assert uses_rendering("L_R") and not uses_contrast("L_R")
    assert uses_rendering("L_R+C") and uses_contrast("L_R+C")
    assert uses_contrast("L_C") and not uses_rendering("L_C")
    with pytest.raises(ValueError, match="unknown"):
        uses_rendering("L_X")
