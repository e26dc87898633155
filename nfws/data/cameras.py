"""Pinhole cameras in the OpenGL convention (x right, y up, looking along -z).

Intrinsics are stored as ``[fx, fy, cx, cy]`` in pixels; poses as camera-to-world 4x4
matrices. Pixel (row i, column j) has its centre at (u, v) = (j + 0.5, i + 0.5), with v
growing downwards, so image row 0 is the top of the picture.
"""
from __future__ import annotations

import torch


def pixel_rays(c2w: torch.Tensor, intrinsics: torch.Tensor, uv: torch.Tensor):
    """World-space rays through pixel positions.

    c2w: [..., 4, 4]; intrinsics: [..., 4]; uv: [..., 2] continuous pixel coordinates
    (column, row) with pixel centres at +0.5. Returns origins [..., 3] and unit
    directions [..., 3].
    """
    fx, fy, cx, cy = intrinsics.unbind(-1)
    x = (uv[..., 0] - cx) / fx
    y = -(uv[..., 1] - cy) / fy
    d_cam = torch.stack([x, y, -torch.ones_like(x)], dim=-1)
    rot = c2w[..., :3, :3]
    d_world = (rot @ d_cam.unsqueeze(-1)).squeeze(-1)
    d_world = d_world / d_world.norm(dim=-1, keepdim=True)
    origins = c2w[..., :3, 3].expand_as(d_world)
    return origins, d_world


def pixel_centres(height: int, width: int, device=None) -> torch.Tensor:
    """Pixel-centre coordinates (u, v) = (j + 0.5, i + 0.5) as [H, W, 2], row-major."""
    v, u = torch.meshgrid(torch.arange(height, device=device, dtype=torch.float32) + 0.5,
                          torch.arange(width, device=device, dtype=torch.float32) + 0.5,
                          indexing="ij")
    return torch.stack([u, v], dim=-1)


def intrinsics_from_fov(fov_x: float, width: int, height: int) -> torch.Tensor:
    """[fx, fy, cx, cy] of a square-pixel pinhole with horizontal field of view ``fov_x``.

    focal = 0.5 W / tan(fov_x / 2), principal point at the image centre (nf2vec, DISN).
    """
    focal = 0.5 * width / torch.tan(torch.tensor(fov_x, dtype=torch.float64) / 2)
    return torch.tensor([focal, focal, width / 2.0, height / 2.0], dtype=torch.float32)


def look_at_c2w(eye: torch.Tensor, target: torch.Tensor | None = None,
                up: torch.Tensor | None = None) -> torch.Tensor:
    """OpenGL camera-to-world matrices [..., 4, 4] of cameras at ``eye`` [..., 3] facing ``target``.

    The camera looks along its -z axis, so z = normalise(eye - target); x = up × z; y = z × x.
    """
    eye = eye.to(torch.float64)
    target = torch.zeros_like(eye) if target is None else target.to(eye).expand_as(eye)
    up = torch.tensor([0.0, 1.0, 0.0], dtype=eye.dtype) if up is None else up.to(eye)
    z = eye - target
    z = z / z.norm(dim=-1, keepdim=True)
    x = torch.linalg.cross(up.expand_as(z), z)
    if bool((x.norm(dim=-1) < 1e-9).any()):
        raise ValueError("look_at_c2w: viewing direction parallel to the up vector")
    x = x / x.norm(dim=-1, keepdim=True)
    y = torch.linalg.cross(z, x)
    c2w = torch.zeros(*eye.shape[:-1], 4, 4, dtype=eye.dtype)
    c2w[..., :3, 0], c2w[..., :3, 1], c2w[..., :3, 2], c2w[..., :3, 3] = x, y, z, eye
    c2w[..., 3, 3] = 1.0
    return c2w.to(torch.float32)


def orbit_c2w(azimuth_deg, elevation_deg, distance) -> torch.Tensor:
    """ShapenetRender (DISN) cameras in the Y-up mesh frame, looking at the origin.

    The camera sits at distance * (cos el cos az, sin el, cos el sin az); inputs broadcast.
    """
    az = torch.deg2rad(torch.as_tensor(azimuth_deg, dtype=torch.float64))
    el = torch.deg2rad(torch.as_tensor(elevation_deg, dtype=torch.float64))
    dist = torch.as_tensor(distance, dtype=torch.float64)
    eye = torch.stack(torch.broadcast_tensors(dist * el.cos() * az.cos(), dist * el.sin(),
                                              dist * el.cos() * az.sin()), dim=-1)
    return look_at_c2w(eye)
