"""Training objectives of the NeRF encoder: rendering loss (nf2vec) and SigLIP contrast.

The three encoder variants of the paper are combinations of these two terms:
``L_R`` (rendering only), ``L_R+C`` (rendering + lambda * contrastive) and ``L_C``
(contrastive only).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

VARIANTS = ("L_R", "L_R+C", "L_C")


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"encoder loss variant {variant!r} unknown; choose one of {VARIANTS}")
    return variant


def uses_rendering(variant: str) -> bool:
    return check_variant(variant) in ("L_R", "L_R+C")


def uses_contrast(variant: str) -> bool:
    return check_variant(variant) in ("L_R+C", "L_C")


def rendering_loss(pred_rgb: torch.Tensor, target_rgb: torch.Tensor, target_alpha: torch.Tensor,
                   fg_threshold: float = 0.5, fg_weight: float = 0.8,
                   bg_weight: float = 0.2) -> torch.Tensor:
    """nf2vec's rendering loss, averaged over the NeRFs of a batch.

    pred_rgb, target_rgb: [B, R, 3]; target_alpha: [B, R] (teacher opacity). For each NeRF,
    rays whose teacher opacity exceeds ``fg_threshold`` are foreground. As in nf2vec the
    loss of one NeRF is ``fg_weight * mean smooth-L1 over foreground rays + bg_weight *
    mean smooth-L1 over background rays`` (a group with no ray contributes 0), so a small
    object is not drowned by its background. The batch loss is the mean over NeRFs (paper
    Eq. 2).
    """
    if pred_rgb.shape != target_rgb.shape or pred_rgb.shape[:2] != target_alpha.shape:
        raise ValueError(f"rendering_loss: shapes differ: pred {tuple(pred_rgb.shape)}, "
                         f"target {tuple(target_rgb.shape)}, alpha {tuple(target_alpha.shape)}")
    per_ray = F.smooth_l1_loss(pred_rgb, target_rgb, reduction="none").mean(-1)  # [B, R]
    fg = (target_alpha > fg_threshold).to(per_ray.dtype)
    bg = 1.0 - fg
    fg_mean = (per_ray * fg).sum(1) / fg.sum(1).clamp_min(1.0)
    bg_mean = (per_ray * bg).sum(1) / bg.sum(1).clamp_min(1.0)
    return (fg_weight * fg_mean + bg_weight * bg_mean).mean()


def siglip_loss(x: torch.Tensor, y: torch.Tensor, positive: torch.Tensor, log_t: torch.Tensor,
                bias: torch.Tensor) -> torch.Tensor:
    """Pairwise sigmoid loss of Zhai et al.: -1/n * sum_ij log sigmoid(z_ij (t x_i.y_j + b)).

    x: [n, d], y: [m, d] embeddings (L2-normalised here); positive: bool [n, m], z_ij = +1
    where true and -1 elsewhere; t = exp(log_t).
    """
    x = F.normalize(x, dim=-1)
    y = F.normalize(y, dim=-1)
    logits = log_t.exp() * x @ y.T + bias
    sign = positive.to(logits.dtype) * 2.0 - 1.0
    return -F.logsigmoid(sign * logits).sum() / x.shape[0]


class SigLIP(nn.Module):
    """SigLIP between the two members of the pairs of a mini-batch, with learnable
    log-temperature t' (init log 10) and bias b (init -10), as in Zhai et al.

    The batch is a list of pairs ``[a_0, b_0, a_1, b_1, ...]``, each the same object in two
    architectures (``nfws.batches.paired_batches``). As in the authors' code, the loss
    compares every first member with every second one: a_i and b_j are a positive when they
    hold the same object, a negative otherwise; members of the same side are not compared.
    """

    def __init__(self, log_t_init: float = math.log(10.0), bias_init: float = -10.0):
        super().__init__()
        self.log_t = nn.Parameter(torch.tensor(float(log_t_init)))
        self.bias = nn.Parameter(torch.tensor(float(bias_init)))

    def forward(self, emb: torch.Tensor, object_ids: Sequence[str]) -> torch.Tensor:
        if len(object_ids) != emb.shape[0] or len(object_ids) % 2:
            raise ValueError(f"SigLIP needs a batch of pairs: {emb.shape[0]} embeddings, "
                             f"{len(object_ids)} object ids")
        first, second = list(object_ids[0::2]), list(object_ids[1::2])
        if first != second:
            bad = next(k for k, (a, b) in enumerate(zip(first, second)) if a != b)
            raise ValueError(f"SigLIP batch item {2 * bad} holds object {first[bad]!r} but its pair "
                             f"partner holds {second[bad]!r}; use the paired batch sampler")
        positive = torch.tensor([[a == b for b in second] for a in first], device=emb.device)
        return siglip_loss(emb[0::2], emb[1::2], positive, self.log_t, self.bias)
