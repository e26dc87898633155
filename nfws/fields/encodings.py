"""Input encodings shared by the MLP and TRI families, batched over a stack of fields.

Everything here follows tiny-cuda-nn's conventions so that weights trained by either
implementation mean the same thing:

- points are first mapped from the bounding box [-bbox, bbox]^3 into [0, 1]^3;
- the frequency encoding of a point in [0, 1]^3 has ``3 * 2 * n_freqs`` entries, entry
  ``d * 2 * n_freqs + 2 * k + j`` being ``sin(2^k * pi * x_d + j * pi / 2)`` (j = 0: sine,
  j = 1: cosine), to within tiny-cuda-nn's own float32 error (see
  :func:`frequency_encoding`);
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

#: Frequency-encoding levels evaluated with sin/cos directly; the levels between them come
#: from the double-angle recurrence (see :func:`frequency_encoding`).
EXACT_EVERY = 12


def to_unit_cube(x: torch.Tensor, bbox: float) -> torch.Tensor:
    """World points in [-bbox, bbox]^3 -> [0, 1]^3, the domain every encoding reads."""
    return (x + bbox) / (2.0 * bbox)


def frequency_encoding(x01: torch.Tensor, n_freqs: int) -> torch.Tensor:
    """tiny-cuda-nn's Frequency encoding of ``x01 [..., D]`` -> ``[..., D * 2 * n_freqs]``.

    Speed (sin on all ``2 * D * n_freqs`` arguments was ~40 % of a training step):

    - sin and cos are evaluated directly only at every :data:`EXACT_EVERY`-th level; each
      level in between is the previous one squared as a unit complex number,
      ``sin 2a = 2 sin a cos a``, ``cos 2a = (cos a - sin a)(cos a + sin a)``;
    - the result has the usual shape but is stored feature-major (the points axis, the
      last of ``...``, innermost in memory), so every level is written by contiguous
      vector ops and a matmul reads it as a transposed operand without a copy.

    Error against the float64 closed form ``sin(2^k pi x)`` of the same float32 x: a
    direct level ``e`` carries tiny-cuda-nn's own argument rounding (<= 2^e pi 2^-23);
    each doubling doubles the error it inherits and adds a few ulps, so level ``k`` is
    within ``2^k pi 2^-23 + 2^(k-e) 2^-21``. That is the order of tiny-cuda-nn's own
    float32 error, which passes 0.1 from k = 19 on (those bands are noise in either
    implementation); up to k = 12 it is under bf16's rounding of the result. Restarting
    every :data:`EXACT_EVERY` levels keeps sin^2 + cos^2 within 2^-10 of 1.

    Points carry no gradient (they are sample positions), so no autograd graph is built;
    inputs that require grad are refused.
    """
    if x01.requires_grad:
        raise ValueError("frequency_encoding: points must not require grad (the encoding "
                         "has no backward pass)")
    if x01.dim() == 1:
        return frequency_encoding(x01[None], n_freqs)[0]
    dtype = torch.promote_types(x01.dtype, torch.float32)
    points = x01.to(dtype).movedim(-1, -2)                     # [..., D, P]
    pi = torch.tensor(math.pi, dtype=dtype, device=x01.device)
    levels = points.new_empty(*points.shape[:-1], n_freqs, 2, points.shape[-1])
    with torch.no_grad():
        for k in range(n_freqs):
            sin_k, cos_k = levels[..., k, 0, :], levels[..., k, 1, :]
            if k % EXACT_EVERY == 0:
                # (x * 2^k) * pi == x * (2^k * pi) bit for bit: scaling by 2^k is exact
                arg = points * (2.0**k * pi)
                torch.sin(arg, out=sin_k)
                torch.cos(arg, out=cos_k)
            else:
                sin_p, cos_p = levels[..., k - 1, 0, :], levels[..., k - 1, 1, :]
                torch.mul(sin_p, cos_p, out=sin_k).mul_(2.0)
                torch.mul(cos_p - sin_p, cos_p + sin_p, out=cos_k)
    return levels.flatten(-4, -2).transpose(-1, -2)           # [..., P, D * 2 * n_freqs]


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
