"""Sphere-traced Lambertian renders of SDF objects, and the render stage built on them.

All rays of all views of one object are traced together as one flat batch; rays that hit
or leave the object's bounding box are dropped from the batch as they finish, so later
steps only pay for the few grazing rays still marching.

Shading is view-independent (albedo * (ambient + diffuse * max(0, n.l)) with a light fixed
in the world), matching NeRFs that take no view direction.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from nfws.data.cameras import intrinsics_from_fov, orbit_c2w, pixel_centres, pixel_rays
from nfws.data.shapenet_render import (DISN_FOV_X, class_synset, sample_easy_views,
                                       write_object_views)
from nfws.data.manifest import read_manifest
from nfws.data.sdf_objects import SDFObject

LIGHT_DIR = (0.4, 1.0, 0.6)   # world direction towards the light (normalised on use)
AMBIENT = 0.35
HIT_EPS = 5e-4                # a ray has hit when the SDF falls below this (object units)
BOX_PAD = 1e-2                # margin around the object's bounding box for marching
NORMAL_STEP = 1e-3
_TETRAHEDRON = torch.tensor([[1, -1, -1], [-1, -1, 1], [-1, 1, -1], [1, 1, 1]], dtype=torch.float32)


def trace(obj: SDFObject, origins: torch.Tensor, dirs: torch.Tensor, max_steps: int = 64):
    """March rays [N, 3] (unit ``dirs``) to the zero level set.

    Returns (hit [N] bool, t [N] distance to the hit, valid where hit). Rays are only
    marched inside the object's (slightly padded) bounding box; a ray still marching after
    ``max_steps`` counts as a miss (only grazing silhouette rays get that far).
    """
    lo, hi = (torch.tensor(b, dtype=origins.dtype, device=origins.device) for b in obj.bounds())
    t_enter, t_exit = _box_span(origins, dirs, lo - BOX_PAD, hi + BOX_PAD)
    t_out = t_enter.clamp(min=0)
    hit = torch.zeros(len(origins), dtype=torch.bool, device=origins.device)
    # per-ray state of the rays still marching, compacted as rays finish
    idx = torch.nonzero(t_exit > t_out).squeeze(1)
    o, d, t, t_end = origins[idx], dirs[idx], t_out[idx], t_exit[idx]
    for _ in range(max_steps):
        if idx.numel() == 0:
            break
        dist = obj.sdf(torch.addcmul(o, t[:, None], d))
        t = t + dist
        landed = dist < HIT_EPS
        hit[idx[landed]] = True
        t_out[idx[landed]] = t[landed]
        keep = ~landed & (t <= t_end)
        idx, o, d, t, t_end = idx[keep], o[keep], d[keep], t[keep], t_end[keep]
    return hit, t_out


def _box_span(origins, dirs, lo, hi):
    """Entry and exit distances of rays through the box [lo, hi] (slab method)."""
    inv = 1.0 / torch.where(dirs.abs() < 1e-12, torch.full_like(dirs, 1e-12), dirs)
    t0, t1 = (lo - origins) * inv, (hi - origins) * inv
    return torch.minimum(t0, t1).max(dim=-1).values, torch.maximum(t0, t1).min(dim=-1).values


def surface_normals(obj: SDFObject, points: torch.Tensor) -> torch.Tensor:
    """Unit SDF gradients [N, 3] by the four-point tetrahedral finite difference."""
    k = _TETRAHEDRON.to(points)
    d = obj.sdf(points[None] + NORMAL_STEP * k[:, None, :])  # [4, N]
    grad = (d[..., None] * k[:, None, :]).sum(0)
    return grad / grad.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def render_views(obj: SDFObject, c2w: torch.Tensor, intrinsics: torch.Tensor, height: int,
                 width: int, light_dir=LIGHT_DIR, ambient: float = AMBIENT,
                 max_steps: int = 64) -> np.ndarray:
    """RGBA uint8 [V, H, W, 4] of ``obj`` seen by cameras c2w [V, 4, 4], intrinsics [V, 4].

    Straight alpha: background pixels are (0, 0, 0, 0), object pixels opaque.
    """
    n_views = c2w.shape[0]
    uv = pixel_centres(height, width).expand(n_views, height, width, 2)
    origins, dirs = pixel_rays(c2w[:, None, None], intrinsics[:, None, None], uv)
    origins, dirs = origins.reshape(-1, 3), dirs.reshape(-1, 3)
    with torch.no_grad():
        hit, t = trace(obj, origins, dirs, max_steps)
        points = origins[hit] + t[hit, None] * dirs[hit]
        light = torch.tensor(light_dir, dtype=torch.float32)
        lambert = (surface_normals(obj, points) @ (light / light.norm())).clamp(min=0)
        rgb = obj.colour(points) * (ambient + (1 - ambient) * lambert)[:, None]
    out = torch.zeros(len(origins), 4, dtype=torch.uint8)
    out[hit, :3] = (rgb.clamp(0, 1) * 255).round().to(torch.uint8)
    out[hit, 3] = 255
    return out.reshape(n_views, height, width, 4).numpy()


def object_rng(seed: int, object_id: str) -> np.random.Generator:
    """Camera randomness of one object: depends on the seed and its id, not on list order."""
    return np.random.default_rng([seed, zlib.crc32(object_id.encode())])


def render_object(obj: SDFObject, resolution: int, n_views: int, rng: np.random.Generator):
    """Sample DISN easy views for ``obj`` and render them: (images, views dict)."""
    views = sample_easy_views(n_views, rng)
    c2w = orbit_c2w(views["azimuth"], views["elevation"], views["distance"])
    intr = intrinsics_from_fov(DISN_FOV_X, resolution, resolution).expand(n_views, 4)
    return render_views(obj, c2w, intr, resolution, resolution), views


def render_objects(manifest_path, out_root, resolution: int = 64, n_views: int = 36,
                   seed: int = 0) -> None:
    """Render stage: every synthetic object of the manifest into the DISN layout.

    Reads each row's ``source`` (a synthetic object JSON) and writes
    ``<out_root>/image/<synset>/<object_id>/easy/`` (00.png…, rendering_metadata.txt,
    transforms_train.json), one object folder atomically at a time.
    """
    manifest = read_manifest(manifest_path, ["object_id", "class_name", "source"])
    if resolution < 8:
        raise ValueError(f"data.shapenet.resolution: must be >= 8, got {resolution}")
    for row in tqdm(manifest.itertuples(index=False), total=len(manifest), desc="render"):
        if not str(row.source).endswith(".json"):
            raise ValueError(f"{manifest_path}: object {row.object_id} source {row.source!r} "
                             "is not a synthetic object JSON; only synthetic objects are rendered")
        synset = class_synset(row.class_name, manifest_path)
        obj = SDFObject.load(row.source)
        if obj.object_id != row.object_id or obj.class_name != row.class_name:
            raise ValueError(f"{row.source}: holds {obj.class_name}/{obj.object_id}, manifest "
                             f"{manifest_path} says {row.class_name}/{row.object_id}")
        images, views = render_object(obj, resolution, n_views, object_rng(seed, row.object_id))
        folder = Path(out_root) / "image" / synset / row.object_id
        write_object_views(folder, images, views)
