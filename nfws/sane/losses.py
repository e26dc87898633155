"""SANE's four training objectives (report §4.5) and their weighted sum.

- reconstruction: mean squared error over the real token elements (padding and [POS]
  tokens excluded), the per-element form of ||M ⊙ (T̂ − T)||²;
- NT-Xent (SimCLR) between the projections of two rotations of each object;
- rotation: squared geodesic angle (2 acos |q_true · q̂|)² with q̂ normalised; the cosine
  is clamped below 1 so acos's infinite slope at 1 never reaches the gradient;
- L2 on the latent: E[z²].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

ACOS_EPS = 1e-6
LOSS_NAMES = ("recon", "ntx", "rot", "l2")


def reconstruction_loss(hash_pred, hash_true, mlp_pred, mlp_true, mlp_mask) -> torch.Tensor:
    """Mean squared error over every hash element and every real MLP weight together."""
    hash_sq = ((hash_pred - hash_true) ** 2).sum()
    mask = mlp_mask.expand_as(mlp_true).to(mlp_true)
    mlp_sq = (mask * (mlp_pred - mlp_true) ** 2).sum()
    return (hash_sq + mlp_sq) / (hash_true.numel() + mask.sum())


def nt_xent(z_a: torch.Tensor, z_b: torch.Tensor, tau: float) -> torch.Tensor:
    """NT-Xent of N positive pairs (z_a[i], z_b[i]) against the other 2N − 2 samples.

    Cosine similarities divided by ``tau``; the loss is averaged over all 2N anchors.
    """
    if z_a.shape != z_b.shape or z_a.shape[0] < 2:
        raise ValueError(f"nt_xent: needs two [N >= 2, d] batches, got {tuple(z_a.shape)} "
                         f"and {tuple(z_b.shape)}")
    n = z_a.shape[0]
    z = F.normalize(torch.cat([z_a, z_b]), dim=-1)
    sim = (z @ z.T) / tau
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    positive = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, positive)


def geodesic_loss(q_pred: torch.Tensor, q_true: torch.Tensor) -> torch.Tensor:
    """Mean squared geodesic angle (radians²) between q_pred (normalised here) and unit q_true."""
    q_pred = F.normalize(q_pred, dim=-1)
    cos = (q_pred * q_true).sum(-1).abs().clamp(max=1.0 - ACOS_EPS)
    return ((2.0 * torch.acos(cos)) ** 2).mean()


def latent_l2(z: torch.Tensor) -> torch.Tensor:
    return (z**2).mean()


def weighted_total(parts: dict[str, torch.Tensor], gamma) -> torch.Tensor:
    """γ1 recon + γ2 ntx + γ3 rot + γ4 l2."""
    if len(gamma) != len(LOSS_NAMES):
        raise ValueError(f"sane.train.gamma: needs {len(LOSS_NAMES)} weights "
                         f"{LOSS_NAMES}, got {list(gamma)}")
    return sum(float(g) * parts[name] for g, name in zip(gamma, LOSS_NAMES))
