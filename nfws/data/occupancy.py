"""Occupancy / SDF training samples and exact surface points of synthetic SDF objects.

Frame: the object's own frame (ShapeNet mesh frame, Y up), in which every synthetic object
is centred with largest extent 1, i.e. inside [-0.5, 0.5]^3. Uniform samples cover the
slightly padded cube [-HALF_EXTENT, HALF_EXTENT]^3 like Occupancy Networks' 0.1 padding.
"""
from __future__ import annotations

import torch

from nfws.data.sdf_objects import SDFObject

HALF_EXTENT = 0.55
SURFACE_TOL = 1e-4
SHELL = 0.02          # outside shell from which surface points are projected


def surface_points(obj: SDFObject, n: int, generator: torch.Generator,
                   batch: int = 65536, max_rounds: int = 200) -> torch.Tensor:
    """``n`` points [n, 3] on the object's outer zero level set, |sdf| < ``SURFACE_TOL``.

    Uniform samples of the padded bounding box falling in the thin outside shell 0 < sdf < ``SHELL`` are projected
    along the SDF gradient (x - sdf * grad); outside a union the SDF is exact, so one step
    lands on the surface and a second removes float error. Points whose projection is not
    on the surface (e.g. near concave creases) are rejected. Sampling a thin shell makes the
    points close to uniform over surface area.
    """
    if n < 1:
        raise ValueError(f"surface_points: n must be >= 1, got {n}")
    lo, hi = (torch.tensor(b, dtype=torch.float32) for b in obj.bounds())
    lo, hi = lo - SHELL, hi + SHELL
    found, total = [], 0
    for _ in range(max_rounds):
        x = lo + (hi - lo) * torch.rand(batch, 3, generator=generator)
        with torch.no_grad():
            d = obj.sdf(x)
        x = x[(d > 0) & (d < SHELL)]
        for _ in range(2):
            x = x - _newton_step(obj, x)
        with torch.no_grad():
            x = x[obj.sdf(x).abs() < SURFACE_TOL]
        found.append(x)
        total += len(x)
        if total >= n:
            return torch.cat(found)[:n]
    raise RuntimeError(f"surface_points: object {obj.object_id} gave only {total} of {n} "
                       f"surface points after {max_rounds} rounds of {batch} samples")


def sample_occupancy(obj: SDFObject, n_uniform: int, n_surface: int, sigma: float,
                     generator: torch.Generator):
    """Training samples: ``n_uniform`` points uniform in the padded cube plus ``n_surface``
    surface points jittered by N(0, sigma^2) per axis.

    Returns points [N, 3] float32 (object frame), occupancy [N] bool (sdf < 0), sdf [N].
    """
    if n_uniform < 0 or n_surface < 0 or n_uniform + n_surface == 0:
        raise ValueError(f"sample_occupancy: need n_uniform, n_surface >= 0 and a positive "
                         f"total, got {n_uniform}, {n_surface}")
    if sigma < 0:
        raise ValueError(f"sample_occupancy: sigma must be >= 0, got {sigma}")
    parts = [_uniform(n_uniform, generator)]
    if n_surface:
        near = surface_points(obj, n_surface, generator)
        parts.append(near + sigma * torch.randn(near.shape, generator=generator))
    points = torch.cat(parts)
    with torch.no_grad():
        sdf = obj.sdf(points)
    return points, sdf < 0, sdf


def _uniform(n: int, generator: torch.Generator) -> torch.Tensor:
    return (torch.rand(n, 3, generator=generator) * 2 - 1) * HALF_EXTENT


def _newton_step(obj: SDFObject, x: torch.Tensor) -> torch.Tensor:
    """sdf(x) * grad sdf(x) / |grad|^2: the Newton step onto the zero level set."""
    x = x.detach().requires_grad_(True)
    d = obj.sdf(x)
    (grad,) = torch.autograd.grad(d.sum(), x)
    step = d[:, None] * grad / (grad**2).sum(-1, keepdim=True).clamp(min=1e-12)
    return step.detach()
