"""Where along each ray the field is evaluated.

CPU path: a fixed number of samples per ray between the ray's entry into and exit from an
axis-aligned box, in nerfacc's batched layout ([n_rays, S]) so that one batched field call
covers every NeRF of a shard: evenly (:func:`stratified_intervals`) or by weights along
the ray (:func:`guided_intervals`). Empty space is skipped twice over: :func:`carve_box`
shrinks each object's box to the region its training views' alpha masks allow (a visual
hull), and inside the box the farm weighs the ray by the cells its NeRF has filled
(:mod:`nfws.render.skipping`), so the same S samples land on the object.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt


def ray_box_intersect(origins, dirs, box_min, box_max, near: float = 0.0):
    """Slab test. Returns (t_near, t_far, hit), with t_near >= ``near``.

    origins, dirs: [..., 3]; box_min, box_max broadcastable to [..., 3]. Rays that miss get
    t_near == t_far (an empty interval), so they render as pure background.
    """
    safe = torch.where(dirs.abs() < 1e-12, torch.full_like(dirs, 1e-12), dirs)
    inv = 1.0 / safe
    t0 = (box_min - origins) * inv
    t1 = (box_max - origins) * inv
    t_near = torch.minimum(t0, t1).amax(dim=-1).clamp_min(near)
    t_far = torch.maximum(t0, t1).amin(dim=-1)
    hit = t_far > t_near
    t_far = torch.where(hit, t_far, t_near)
    return t_near, t_far, hit


def stratified_intervals(t_near, t_far, n_samples: int, jitter: torch.Tensor | None = None):
    """S equal bins per ray between t_near and t_far.

    Returns (t_starts, t_ends, t_points), each [..., S]: bin edges for the density
    integral and the position where the field is evaluated: at ``jitter [..., S]``
    (uniform draws in [0, 1), training) of the way through its bin, or at the bin
    midpoint without it (eval). Points are sorted and lie in [t_near, t_far].
    """
    if n_samples < 1:
        raise ValueError(f"samples per ray must be >= 1, got {n_samples}")
    steps = torch.arange(n_samples + 1, device=t_near.device, dtype=t_near.dtype) / n_samples
    span = (t_far - t_near).unsqueeze(-1)
    edges = t_near.unsqueeze(-1) + span * steps
    t_starts, t_ends = edges[..., :-1], edges[..., 1:]
    if jitter is None:
        offset = torch.full_like(t_starts, 0.5)
    elif jitter.shape != t_starts.shape:
        raise ValueError(f"sample jitter: shape {tuple(jitter.shape)}, expected "
                         f"{tuple(t_starts.shape)} (rays x samples per ray)")
    else:
        offset = jitter.to(t_starts)
    return t_starts, t_ends, t_starts + offset * (t_ends - t_starts)


def guided_intervals(t_near, t_far, n_samples: int, bin_weights: torch.Tensor,
                     jitter: torch.Tensor | None = None):
    """S intervals per ray that take equal shares of a piecewise-constant sampling density.

    ``bin_weights [..., K]`` (positive) weigh K equal bins of [t_near, t_far]. Interval k
    spans the chord where the cumulative weight runs from k/S to (k+1)/S, so a bin gets
    samples in proportion to its weight while the intervals still tile the whole chord:
    the rendering integral keeps every stretch of the ray, finely where the weight is high
    and coarsely elsewhere (the placement of NeRF's hierarchical sampling). The point is
    jittered in weight, as :func:`stratified_intervals` jitters in t (midpoint in weight
    without ``jitter``). Equal weights give exactly :func:`stratified_intervals`.
    """
    if not bool((bin_weights > 0).all()):
        raise ValueError("guided_intervals: bin weights must be positive (a bin of weight 0 "
                         "would get no interval)")
    n_bins, dtype = bin_weights.shape[-1], t_near.dtype
    edges = t_near.unsqueeze(-1) + (t_far - t_near).unsqueeze(-1) * (
        torch.arange(n_bins + 1, device=t_near.device, dtype=dtype) / n_bins)
    cdf = torch.cumsum(bin_weights.to(dtype), -1)
    cdf = torch.cat([torch.zeros_like(cdf[..., :1]), cdf / cdf[..., -1:]], -1)       # [..., K+1]
    # stratified in weight, then mapped to t through the inverse of the cdf
    u_starts, u_ends, u_points = stratified_intervals(torch.zeros_like(t_near),
                                                      torch.ones_like(t_near), n_samples, jitter)
    u = torch.cat([u_starts, u_ends[..., -1:], u_points], -1)
    # the bin holding each u, then linear inside it (cdf is strictly increasing)
    j = (torch.searchsorted(cdf.contiguous(), u.contiguous(), right=True) - 1).clamp_(0, n_bins - 1)
    c0, c1 = cdf.gather(-1, j), cdf.gather(-1, j + 1)
    e0, e1 = edges.gather(-1, j), edges.gather(-1, j + 1)
    t = torch.addcmul(e0, ((u - c0) / (c1 - c0)).clamp_(0, 1), e1 - e0)
    t_edges, t_points = t[..., :n_samples + 1], t[..., n_samples + 1:]
    return t_edges[..., :-1], t_edges[..., 1:], t_points


def carve_box(alpha, c2w, intrinsics, bbox: float, resolution: int = 32,
              threshold: float = 0.0) -> torch.Tensor:
    """Conservative bounding box [2, 3] of the object seen through its alpha masks.

    A voxel of a ``resolution``^3 grid over [-bbox, bbox]^3 survives when, in every view
    where it projects inside the image, some mask pixel lies within the voxel's projected
    radius (plus half a pixel diagonal) of its projected centre — tested with a distance
    transform of the mask, so no part of the object can be carved away. The box of the
    survivors, grown by one voxel and clipped to the bbox, is returned.
    alpha: [V, H, W] in [0, 1]; c2w: [V, 4, 4]; intrinsics: [V, 4].
    """
    V, H, W = alpha.shape
    voxel = 2.0 * bbox / resolution
    centres = (torch.arange(resolution, dtype=torch.float32) + 0.5) * voxel - bbox
    grid = torch.stack(torch.meshgrid(centres, centres, centres, indexing="ij"), -1).reshape(-1, 3)
    radius = voxel * math.sqrt(3) / 2
    w2c = torch.linalg.inv(c2w.double()).float()
    cam = torch.einsum("vij,nj->vni", w2c[:, :3, :3], grid) + w2c[:, None, :3, 3]   # [V, n, 3]
    depth = -cam[..., 2]
    fx, fy, cx, cy = (t[:, None] for t in intrinsics.float().unbind(-1))
    safe = depth.clamp_min(radius)
    u = fx * cam[..., 0] / safe + cx
    r = cy - fy * cam[..., 1] / safe
    inside = (depth > radius) & (u >= 0) & (u < W) & (r >= 0) & (r < H)
    to_mask = torch.from_numpy(np.stack([distance_transform_edt(a) for a in
                                         (alpha <= threshold).numpy()])).float()
    reach = torch.maximum(fx, fy) * radius / safe + math.sqrt(0.5)
    flat = r.clamp(0, H - 1).long() * W + u.clamp(0, W - 1).long()
    covered = torch.gather(to_mask.reshape(V, H * W), 1, flat) <= reach
    keep = (~inside | covered).all(0)
    if not bool(keep.any()):
        raise ValueError("carve_box: the alpha masks leave no occupied voxel (empty object?)")
    pts = grid[keep]
    lo = (pts.amin(0) - 1.5 * voxel).clamp_min(-bbox)
    hi = (pts.amax(0) + 1.5 * voxel).clamp_max(bbox)
    return torch.stack([lo, hi]).float()
