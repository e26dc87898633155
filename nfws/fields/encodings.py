"""Input encodings shared by the MLP and TRI families, batched over a stack of fields.

Everything here follows tiny-cuda-nn's conventions so that weights trained by either
implementation mean the same thing:

- points are first mapped from the bounding box [-bbox, bbox]^3 into [0, 1]^3;
- the frequency encoding of a point in [0, 1]^3 has ``3 * 2 * n_freqs`` entries, entry
  ``d * 2 * n_freqs + 2 * k + j`` being ``sin(2^k * pi * x_d + j * pi / 2)`` (j = 0: sine,
  j = 1: cosine), computed like tiny-cuda-nn (scale by 2^k, multiply by pi, add the phase);
- tri-plane features are bilinear samples of three C-channel planes, summed over planes,
  sampled like the reference code (``F.grid_sample``, ``align_corners=True``, zero padding).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: Planes of a tri-plane and the two point coordinates (in [0, 1]) each one is indexed by.
#: ``triplane[p, c, i, j]`` holds channel ``c`` at ``(a, b) = (j, i) / (R - 1)`` where
#: ``(a, b)`` are the coordinates ``PLANE_AXES[p]``: the column follows the first axis, the
#: row the second (``F.grid_sample`` convention, ``align_corners=True`` so the R samples
#: sit on the grid vertices 0, 1/(R-1), ..., 1).
PLANE_AXES = ((0, 1), (0, 2), (1, 2))


def to_unit_cube(x: torch.Tensor, bbox: float) -> torch.Tensor:
    """World points in [-bbox, bbox]^3 -> [0, 1]^3, the domain every encoding reads."""
    return (x + bbox) / (2.0 * bbox)


def frequency_encoding(x01: torch.Tensor, n_freqs: int) -> torch.Tensor:
    """tiny-cuda-nn's Frequency encoding of ``x01 [..., D]`` -> ``[..., D * 2 * n_freqs]``."""
    # (x * 2^k) * pi == x * (2^k * pi) bit for bit: scaling by 2^k is exact in floating point
    dtype = torch.promote_types(x01.dtype, torch.float32)
    scales = (torch.pow(2.0, torch.arange(n_freqs, dtype=dtype, device=x01.device))
              * torch.tensor(math.pi, dtype=dtype, device=x01.device)).view(n_freqs, 1)
    phases = torch.tensor([0.0, math.pi / 2], dtype=dtype, device=x01.device)
    arg = torch.addcmul(phases, x01.to(dtype)[..., None, None], scales)   # [..., D, n_freqs, 2]
    return torch.sin(arg).flatten(-3)


def triplane_features(planes: torch.Tensor, x01: torch.Tensor) -> torch.Tensor:
    """Bilinear tri-plane lookup, batched over fields.

    planes ``[B, 3, C, R, R]`` (layout in :data:`PLANE_AXES`), x01 ``[B, N, 3]`` in [0, 1].
    Returns ``[B, N, C]``: the sum over the three planes of the bilinear samples. Outside
    [0, 1] the planes fade to zero (zero padding, as in the reference code).
    """
    b, n_planes, c, r, _ = planes.shape
    n = x01.shape[1]
    g = x01 * 2.0 - 1.0
    grid = torch.stack([g[..., list(axes)] for axes in PLANE_AXES], dim=1)   # [B, 3, N, 2]
    grid = grid.reshape(b * n_planes, 1, n, 2).to(planes.dtype)
    sampled = F.grid_sample(planes.reshape(b * n_planes, c, r, r), grid, mode="bilinear",
                            padding_mode="zeros", align_corners=True)      # [B*3, C, 1, N]
    return sampled.reshape(b, n_planes, c, n).sum(dim=1).transpose(1, 2)
