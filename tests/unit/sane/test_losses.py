"""SANE losses against hand-computed values."""
import math

import pytest
import torch

from nfws.sane.losses import (geodesic_loss, latent_l2, nt_xent, reconstruction_loss,
                              weighted_total)


def test_geodesic_loss_is_zero_for_q_and_minus_q():
    q = torch.nn.functional.normalize(torch.tensor([[0.3, -0.2, 0.9, 0.1]]), dim=-1)
    assert float(geodesic_loss(q, q)) < 1e-5
    assert float(geodesic_loss(-3.0 * q, q)) < 1e-5          # sign and scale of q_pred ignored


def test_geodesic_loss_of_a_half_turn_is_pi_squared():
    identity = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    half_turn_y = torch.tensor([[0.0, 0.0, 1.0, 0.0]])         # cos(π/2), sin(π/2)·y
    torch.testing.assert_close(geodesic_loss(half_turn_y, identity), torch.tensor(math.pi**2))
    quarter = torch.tensor([[math.cos(math.pi / 4), 0.0, math.sin(math.pi / 4), 0.0]])
    torch.testing.assert_close(geodesic_loss(quarter, identity), torch.tensor((math.pi / 2) ** 2))


def test_geodesic_loss_has_finite_gradients_at_a_perfect_prediction():
    q = torch.tensor([[1.0, 0.0, 0.0, 0.0]], requires_grad=True)
    geodesic_loss(q, q.detach()).backward()
    assert torch.isfinite(q.grad).all()


def test_nt_xent_two_pairs_by_hand():
    z_a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z_b = torch.tensor([[0.6, 0.8], [0.8, 0.6]])
    # cosines: a1·b1 = .6, a1·b2 = .8, a2·b1 = .8, a2·b2 = .6, a1·a2 = 0, b1·b2 = .96; τ = 0.5
    e = math.exp
    anchor_a = -math.log(e(1.2) / (e(0.0) + e(1.2) + e(1.6)))     # a1 (and a2, by symmetry)
    anchor_b = -math.log(e(1.2) / (e(1.2) + e(1.6) + e(1.92)))    # b1 (and b2)
    expected = (2 * anchor_a + 2 * anchor_b) / 4
    assert float(nt_xent(z_a, z_b, 0.5)) == pytest.approx(expected, rel=1e-6)


def test_nt_xent_ignores_embedding_scale():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    assert float(nt_xent(a, b, 0.1)) == pytest.approx(float(nt_xent(5 * a, 0.5 * b, 0.1)), rel=1e-5)


def test_reconstruction_loss_counts_only_real_elements():
    hash_true, hash_pred = torch.zeros(1, 1, 2), torch.tensor([[[1.0, 3.0]]])
    mlp_true = torch.zeros(1, 2, 2)
    mlp_pred = torch.tensor([[[2.0, 100.0], [-100.0, 100.0]]])
    mask = torch.tensor([[1.0, 0.0], [0.0, 0.0]])                 # only mlp element (0, 0) is real
    # (1 + 9 + 4) / 3 real elements
    assert float(reconstruction_loss(hash_pred, hash_true, mlp_pred, mlp_true, mask)) == pytest.approx(14 / 3)


def test_weighted_total_and_latent_l2():
    parts = {"recon": torch.tensor(1.0), "ntx": torch.tensor(2.0), "rot": torch.tensor(3.0),
             "l2": latent_l2(torch.tensor([[1.0, 3.0]]))}               # (1 + 9) / 2 = 5
    assert float(weighted_total(parts, (0.4, 0.05, 0.53, 0.02))) == pytest.approx(
        0.4 + 0.1 + 1.59 + 0.1)
    with pytest.raises(ValueError, match="gamma"):
        weighted_total(parts, (1.0, 1.0))
