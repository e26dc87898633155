"""The training rays of a shard: per-NeRF sampling boxes, the view split, the ray bank."""
from __future__ import annotations

import torch

from nfws.data.cameras import pixel_rays
from nfws.data.views import ShardViews
from nfws.fields.spec import ArchSpec
from nfws.render.sampling import carve_box, ray_box_intersect


class RayBank:
    """Every training pixel of every NeRF whose ray hits that NeRF's box, for fast draws."""

    def __init__(self, views: ShardViews, view_idx: list[int], boxes: torch.Tensor, device):
        B, _, H, W, _ = views.images.shape
        jj, ii = torch.meshgrid(torch.arange(W) + 0.5, torch.arange(H) + 0.5, indexing="xy")
        uv = torch.stack([jj, ii], -1).reshape(-1, 2)
        dirs, rgba, view_of, counts = [], [], [], []
        for b in range(B):
            c2w = torch.from_numpy(views.c2w[b, view_idx])
            intr = torch.from_numpy(views.intrinsics[b, view_idx])
            o, d = pixel_rays(c2w[:, None], intr[:, None], uv[None])
            hit = ray_box_intersect(o, d, boxes[b, 0], boxes[b, 1])[2].reshape(-1)
            dirs.append(d.reshape(-1, 3)[hit])
            rgba.append(torch.from_numpy(views.images[b, view_idx]).reshape(-1, 4)[hit])
            view_of.append(torch.arange(len(view_idx)).repeat_interleave(H * W)[hit])
            counts.append(int(hit.sum()))
        if min(counts) == 0:
            bad = [views.object_ids[b] for b, c in enumerate(counts) if c == 0]
            raise ValueError(f"{views.source}: objects {bad}: no training ray meets the object box")
        n_max = max(counts)
        pad = lambda ts: torch.stack([torch.cat([t, t[:1].expand(n_max - len(t), *t.shape[1:])])
                                      for t in ts])
        self.dirs = pad(dirs).to(device)
        self.rgba = pad(rgba).to(device)
        self.view_of = pad(view_of).to(device)
        self.origins = torch.from_numpy(views.c2w[:, view_idx][:, :, :3, 3].copy()).to(device)  # [B, Vt, 3]
        self.counts = torch.tensor(counts, dtype=torch.float64)
        self.device = device

    def draw(self, u: torch.Tensor):
        """The rays at uniform draws ``u [B, R]`` (float64, in [0, 1)) of each NeRF's bank:
        origins, dirs [B, R, 3] and rgba [B, R, 4] in [0, 1]."""
        idx = (u * self.counts[:, None]).long().to(self.device)
        take = lambda t: torch.gather(t, 1, idx.view(*idx.shape, *[1] * (t.dim() - 2))
                                      .expand(-1, -1, *t.shape[2:]))
        view = take(self.view_of)
        origins = torch.gather(self.origins, 1, view[..., None].expand(-1, -1, 3))
        return origins, take(self.dirs), take(self.rgba).float() / 255.0


def object_boxes(views: ShardViews, view_idx: list[int], spec: ArchSpec, carve_resolution: int):
    """Per-NeRF sampling boxes [B, 2, 3]: carved from the training masks, or the full bbox."""
    B = len(views.object_ids)
    if carve_resolution == 0:
        return torch.tensor([[[-spec.bbox] * 3, [spec.bbox] * 3]]).expand(B, 2, 3).clone()
    boxes = []
    for b, oid in enumerate(views.object_ids):
        alpha = torch.from_numpy(views.images[b, view_idx, ..., 3]).float() / 255.0
        try:
            boxes.append(carve_box(alpha, torch.from_numpy(views.c2w[b, view_idx]),
                                   torch.from_numpy(views.intrinsics[b, view_idx]), spec.bbox,
                                   carve_resolution))
        except ValueError as err:
            raise ValueError(f"{views.source}: object {oid!r}: {err}") from err
    return torch.stack(boxes)


def split_views(n_views: int, heldout_views, source: str) -> tuple[list[int], list[int]]:
    """Training and held-out view indices; ``heldout_views`` is ``nerf.fit.heldout_views``."""
    bad = [v for v in heldout_views if not 0 <= v < n_views]
    if bad:
        raise ValueError(f"nerf.fit.heldout_views: {bad} out of range for {n_views} views in {source}")
    held = sorted(set(heldout_views))
    train = [v for v in range(n_views) if v not in held]
    if not train:
        raise ValueError(f"nerf.fit.heldout_views: leaves no training view in {source}")
    return train, held
