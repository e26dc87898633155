"""Empty-space skipping in the batched layout (the farm's CPU path).

On CUDA the farm marches nerfacc's occupancy grids: a fine step, with the samples in
empty cells dropped. On the CPU every NeRF keeps the dense [B, R, S] layout, so instead
of dropping samples the S samples of a ray move to where its NeRF holds matter:
:class:`OccupancyCells` keeps a grid of cells per NeRF with nerfacc's rule (an
exponential moving maximum of the opacity ``sigma * delta`` sampled once per cell, a cell
is occupied above ``min(threshold, mean)``), and :meth:`OccupancyCells.bin_weights` weighs
bins along each ray by it for :func:`nfws.render.sampling.guided_intervals`. The cost per
step stays S samples a ray; the spacing inside the object shrinks by the share of the
chord that is empty. Empty bins keep a small weight (``floor``), so every stretch of the
ray is still sampled now and then and a cell the grid has wrongly emptied still gets
gradient to fill it again.
"""
from __future__ import annotations

import torch


class OccupancyCells:
    """A G^3 grid of cells over each NeRF's box [B, 2, 3] and which of them hold matter."""

    def __init__(self, boxes: torch.Tensor, resolution: int, start: int = 0, every: int = 16,
                 decay: float = 0.95, threshold: float = 1e-2):
        if resolution < 1 or every < 1:
            raise ValueError(f"occupancy cells: resolution ({resolution}) and refresh interval "
                             f"({every}) must be >= 1")
        self.boxes, self.resolution = boxes, int(resolution)
        self.decay, self.threshold = float(decay), float(threshold)
        self.opacity = torch.zeros(len(boxes), self.resolution**3, device=boxes.device)
        self.occupied = torch.ones_like(self.opacity, dtype=torch.bool)
        self.start, self.every = int(start), int(every)
        ijk = torch.stack(torch.meshgrid(*[torch.arange(self.resolution)] * 3, indexing="ij"), -1)
        self._cell_corner = ijk.flip(-1).reshape(-1, 3).float()   # x fastest, as in cell_of

    def due(self, step: int) -> bool:
        """Whether the cells are refreshed at ``step``: at ``start``, then every ``every``."""
        return step >= self.start and (step - self.start) % self.every == 0

    def _cell(self, coords: torch.Tensor) -> torch.Tensor:
        """Flat cell index of cell coordinates ``[..., 3]`` (units of cells; clamped)."""
        g = self.resolution
        cell = coords.floor().long().clamp_(0, g - 1)
        return cell[..., 0] + g * (cell[..., 1] + g * cell[..., 2])

    def cell_of(self, points: torch.Tensor) -> torch.Tensor:
        """Flat cell index [B, N] of ``points [B, N, 3]`` (x fastest; outside -> clamped)."""
        lo, hi = self.boxes[:, None, 0], self.boxes[:, None, 1]
        return self._cell((points - lo) / (hi - lo) * self.resolution)

    def occupied_at(self, points: torch.Tensor) -> torch.Tensor:
        """[B, N] bool: the point lies in an occupied cell of its NeRF."""
        return self.occupied.gather(1, self.cell_of(points))

    def bin_weights(self, origins, dirs, t_near, t_far, n_bins: int, floor: float) -> torch.Tensor:
        """[B, R, K] sampling weights of K equal bins of each ray's chord: 1 where the bin's
        midpoint lies in an occupied cell, ``floor`` elsewhere.

        A ray's cell coordinates are linear in t, so each midpoint costs one multiply-add."""
        B, R, _ = origins.shape
        lo, hi = self.boxes[:, None, 0], self.boxes[:, None, 1]
        scale = self.resolution / (hi - lo)                                             # [B, 1, 3]
        start = (origins + dirs * t_near.unsqueeze(-1) - lo) * scale                   # [B, R, 3]
        mid = (torch.arange(n_bins, device=t_near.device, dtype=t_near.dtype) + 0.5) / n_bins
        step = (dirs * scale * (t_far - t_near).unsqueeze(-1)).unsqueeze(2)             # [B, R, 1, 3]
        coords = torch.addcmul(start.unsqueeze(2), step, mid.view(1, 1, n_bins, 1))     # [B, R, K, 3]
        occupied = self.occupied.gather(1, self._cell(coords).view(B, R * n_bins))
        return torch.where(occupied, 1.0, floor).view(B, R, n_bins).to(t_near.dtype)

    @torch.no_grad()
    def update(self, field, delta: torch.Tensor, offsets: torch.Tensor,
               points_per_call: int = 32768) -> None:
        """Sample every cell once and refresh the occupancy.

        ``delta`` [B]: the sample spacing, so that ``sigma * delta`` is the opacity scale
        nerfacc thresholds. ``offsets`` [B, G^3, 3]: where in each cell its sample lies
        (uniform draws in [0, 1), cells in flat-index order). The field runs on at most
        ``points_per_call`` points at once (over all NeRFs), as in training: one call over
        every cell of a 32-NeRF shard cost the steps ~10 % more than the same points in
        training-sized calls.
        """
        g, B = self.resolution, len(self.boxes)
        if offsets.shape != (B, g**3, 3):
            raise ValueError(f"occupancy cells: offsets of shape {tuple(offsets.shape)}, "
                             f"expected {(B, g**3, 3)}")
        u = (self._cell_corner[None] + offsets) / g
        lo, hi = self.boxes[:, None, 0], self.boxes[:, None, 1]
        points = lo + u.to(lo.device) * (hi - lo)
        chunk = max(1, points_per_call // B)
        sigma = torch.cat([field(points[:, i:i + chunk])[1] for i in range(0, g**3, chunk)], 1)
        self.opacity = torch.maximum(self.opacity * self.decay, sigma.float() * delta[:, None])
        level = self.opacity.mean(1, keepdim=True).clamp(max=self.threshold)
        self.occupied = self.opacity > level

    def state_dict(self) -> dict:
        return {"opacity": self.opacity, "occupied": self.occupied}

    def load_state_dict(self, state: dict) -> None:
        self.opacity = state["opacity"].to(self.opacity.device)
        self.occupied = state["occupied"].to(self.occupied.device)
