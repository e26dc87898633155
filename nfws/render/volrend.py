"""Volume rendering of a stack of B NeRFs through nerfacc.

Both paths hand nerfacc's ``rendering`` the intervals and let it integrate
(``render_weight_from_density`` + ``accumulate_along_rays``); they differ only in where
the samples come from:

- :func:`render_rays` — stratified samples inside each NeRF's box in the batched layout
  ([B·R, S]); runs anywhere and is the CPU path (optionally concentrated in the cells
  that hold matter, :mod:`nfws.render.skipping`) and the evaluation path.
- :func:`render_rays_occupancy` — per-NeRF ``nerfacc.OccGridEstimator`` marching, packed
  samples (CUDA only; nerfacc's marching kernels have no CPU build).

A field is any callable ``field(x [B, N, 3]) -> (rgb [B, N, 3], sigma [B, N])``.
Colours are composited on a per-ray background: ``rgb + bg · (1 − opacity)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import nerfacc
import torch

from nfws.render.sampling import guided_intervals, ray_box_intersect, stratified_intervals


@dataclass
class Rendered:
    rgb: torch.Tensor      # [B, R, 3], composited on the background
    opacity: torch.Tensor  # [B, R]
    depth: torch.Tensor    # [B, R]


def render_rays(field, origins, dirs, box, n_samples: int, background,
                jitter: torch.Tensor | None = None, bin_weights=None) -> Rendered:
    """Render R rays per NeRF with S stratified samples inside each NeRF's box.

    origins, dirs: [B, R, 3]; box: [B, 2, 3] (min, max corner); background: broadcastable
    to [B, R, 3]. ``jitter [B, R, S]`` (uniform draws in [0, 1)) places each sample inside its
    interval (training); without it samples sit at interval midpoints.
    ``bin_weights`` ((origins, dirs, t_near, t_far) -> [B, R, K] positive): place the S
    samples by these weights over K equal bins of each ray's chord instead of evenly
    (:func:`nfws.render.sampling.guided_intervals`).
    """
    B, R, _ = origins.shape
    t_near, t_far, _ = ray_box_intersect(origins, dirs, box[:, None, 0], box[:, None, 1])
    if bin_weights is None:
        t_starts, t_ends, t_points = stratified_intervals(t_near, t_far, n_samples, jitter)
    else:
        t_starts, t_ends, t_points = guided_intervals(
            t_near, t_far, n_samples, bin_weights(origins, dirs, t_near, t_far), jitter)
    points = origins[:, :, None, :] + dirs[:, :, None, :] * t_points[..., None]
    rgb, sigma = field(points.reshape(B, R * n_samples, 3))

    def rgb_sigma_fn(*_):
        return (rgb.float().reshape(B * R, n_samples, 3),
                sigma.float().reshape(B * R, n_samples))

    colour, opacity, depth, _ = nerfacc.volrend.rendering(
        t_starts.reshape(B * R, n_samples), t_ends.reshape(B * R, n_samples),
        rgb_sigma_fn=rgb_sigma_fn)
    return _composite(colour.reshape(B, R, 3), opacity.reshape(B, R), depth.reshape(B, R),
                      background)


def make_occupancy_estimators(boxes, resolution: int, device) -> list:
    """One ``OccGridEstimator`` per NeRF over its (carved) box."""
    return [nerfacc.OccGridEstimator(roi_aabb=box.reshape(6).to(device), resolution=resolution,
                                     levels=1).to(device) for box in boxes]


def update_occupancy(estimators, field, step: int, render_step_size: float,
                     occ_threshold: float = 1e-2, every: int = 16) -> None:
    """Refresh each NeRF's grid from its own density (nerfacc's EMA update rule).

    The stack evaluates every NeRF on a batch of points, so NeRF b's grid is queried by
    broadcasting its points to all B NeRFs and keeping row b (runs every ``every`` steps).
    """
    for b, estimator in enumerate(estimators):
        def occ_eval_fn(x, b=b):
            _, sigma = field(x[None].expand(len(estimators), -1, -1))
            return sigma[b].float()[:, None] * render_step_size

        estimator.update_every_n_steps(step=step, occ_eval_fn=occ_eval_fn,
                                       occ_thre=occ_threshold, n=every)


def render_rays_occupancy(field, estimators, origins, dirs, background,
                          render_step_size: float, stratified: bool) -> Rendered:
    """Packed rendering with per-NeRF occupancy grids (CUDA).

    Each NeRF marches its rays through its own grid; the packed samples of all NeRFs are
    padded to one [B, N_max, 3] field call and integrated in one packed nerfacc call.
    """
    B, R, _ = origins.shape
    ray_ids, starts, ends, counts = [], [], [], []
    for b, estimator in enumerate(estimators):
        ray_indices, t_starts, t_ends = estimator.sampling(
            origins[b], dirs[b], render_step_size=render_step_size, stratified=stratified)
        ray_ids.append(ray_indices + b * R)
        starts.append(t_starts)
        ends.append(t_ends)
        counts.append(len(t_starts))
    n_max = max(max(counts), 1)
    flat_o, flat_d = origins.reshape(B * R, 3), dirs.reshape(B * R, 3)
    points = origins.new_zeros(B, n_max, 3)
    for b in range(B):
        mid = (starts[b] + ends[b])[:, None] / 2
        points[b, :counts[b]] = flat_o[ray_ids[b]] + flat_d[ray_ids[b]] * mid
    rgb, sigma = field(points)
    rgb = torch.cat([rgb[b, :counts[b]].float() for b in range(B)])
    sigma = torch.cat([sigma[b, :counts[b]].float() for b in range(B)])
    colour, opacity, depth, _ = nerfacc.volrend.rendering(
        torch.cat(starts), torch.cat(ends), ray_indices=torch.cat(ray_ids), n_rays=B * R,
        rgb_sigma_fn=lambda *_: (rgb, sigma))
    return _composite(colour.reshape(B, R, 3), opacity.reshape(B, R), depth.reshape(B, R),
                      background)


@torch.no_grad()
def render_pixels(field, origins, dirs, box, n_samples: int, background,
                  rays_per_call: int = 4096) -> Rendered:
    """Evaluation render (midpoint samples, no gradients) in chunks of rays per NeRF."""
    parts = [render_rays(field, origins[:, i:i + rays_per_call], dirs[:, i:i + rays_per_call],
                         box, n_samples, _slice_background(background, i, rays_per_call))
             for i in range(0, origins.shape[1], rays_per_call)]
    return Rendered(torch.cat([p.rgb for p in parts], 1), torch.cat([p.opacity for p in parts], 1),
                    torch.cat([p.depth for p in parts], 1))


def _slice_background(background, start: int, length: int):
    background = torch.as_tensor(background)
    if background.dim() == 3:
        return background[:, start:start + length]
    return background


def _composite(colour, opacity, depth, background) -> Rendered:
    background = torch.as_tensor(background, dtype=colour.dtype, device=colour.device)
    return Rendered(colour + background * (1.0 - opacity[..., None]), opacity, depth)
