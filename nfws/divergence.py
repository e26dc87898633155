"""Did a fit diverge? One criterion for every batch of fitted objects (NeRFs, instances).

An object diverged when any of these holds (``docs/robustness.md`` gives the measurements
behind the default growth limit):

- its loss or a weight is non-finite;
- its loss at the end (mean of the last quarter of the logged values) is more than
  ``LOSS_RISE`` times its first logged value: the loss exploded (a margin, since a short
  fit's loss is noisy: random backgrounds, resampled points);
- its weights grew far beyond the initialisation's scale: the RMS of some tensor exceeds
  ``max_weight_growth`` times the RMS of the object's largest tensor at the start (the
  whole object's starting scale, so a table initialised near zero may still grow).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

#: what a job does with a diverged object: fail (naming it) or drop it and list it
ON_FAILURE = ("fail", "drop")

#: the end loss may exceed the first logged loss by this factor before it counts as exploded
LOSS_RISE = 1.5


def _rms(tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """[B, n_tensors] RMS of each object's tensors (first axis = object)."""
    return torch.stack([t.detach().double().flatten(1).pow(2).mean(1).sqrt()
                        for t in tensors.values()], 1)


def divergence_reasons(loss_curve: np.ndarray, start: Mapping[str, torch.Tensor],
                       end: Mapping[str, torch.Tensor], max_weight_growth: float) -> list[str | None]:
    """Per object: why it diverged, or ``None``. ``loss_curve`` [B, n_logged]; ``start`` and
    ``end`` map tensor names to [B, ...] weights before and after the fit."""
    curve = np.asarray(loss_curve, dtype=np.float64)
    if curve.ndim != 2 or curve.shape[1] < 1:
        raise ValueError(f"divergence_reasons: loss curve must be [objects, logged], got {curve.shape}")
    tail = curve[:, -max(1, curve.shape[1] // 4):].mean(1)
    scale = _rms(start).amax(1).numpy()
    rms = _rms(end).numpy()
    reasons: list[str | None] = []
    for b in range(len(curve)):
        if not np.isfinite(curve[b]).all():
            reasons.append("non-finite loss")
        elif not np.isfinite(rms[b]).all():
            reasons.append("non-finite weights")
        elif curve.shape[1] > 1 and tail[b] > LOSS_RISE * curve[b, 0]:
            reasons.append(f"loss rose from {curve[b, 0]:.4g} to {tail[b]:.4g}")
        elif rms[b].max() > max_weight_growth * scale[b]:
            worst = list(end)[int(rms[b].argmax())]
            reasons.append(f"weights grew {rms[b].max() / scale[b]:.3g}x the starting scale "
                           f"(tensor {worst}: RMS {rms[b].max():.3g}; max_weight_growth "
                           f"{max_weight_growth:g})")
        else:
            reasons.append(None)
    return reasons
