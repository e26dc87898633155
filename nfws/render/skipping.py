"""Empty-space skipping in the batched layout (the farm's CPU path).

On CUDA the farm marches nerfacc's occupancy grids; on the CPU every NeRF keeps the dense
[B, R, S] sample layout, and skipping means not evaluating the field at samples that lie
in cells of the NeRF's box known to be empty. :class:`OccupancyCells` keeps that
knowledge per NeRF with nerfacc's rule (an exponential moving maximum of the opacity
``sigma * delta`` sampled once per cell, a cell is occupied above ``min(threshold, mean)``);
:func:`field_where` evaluates a field at the kept samples only, packed to the largest
per-NeRF count, and gives every skipped sample zero density.
"""
from __future__ import annotations

import torch

#: Packed point counts are rounded up to a multiple of N / PACK_LEVELS (N: points per
#: NeRF), so a run sees at most PACK_LEVELS matmul shapes: bf16 kernels are generated per
#: shape (a new M cost more than the rows it saved) and ragged counts ran ~2x slower per row.
PACK_LEVELS = 8


def _pack_step(n: int) -> int:
    return max(1, -(-n // PACK_LEVELS))


def field_where(field, points: torch.Tensor, keep: torch.Tensor):
    """(rgb [B, N, 3], sigma [B, N]) of ``field`` at ``points [B, N, 3]`` where ``keep``
    ([B, N] bool) holds; sigma is 0 (and rgb 0) elsewhere.

    The kept points of each NeRF are packed to the front of a [B, M, 3] batch, M the
    largest count over the NeRFs rounded up to a multiple of N / :data:`PACK_LEVELS`, so the
    field runs one batched call on M <= N points; padding entries are evaluated and
    discarded (their sigma and rgb are zeroed).
    """
    B, N, _ = points.shape
    counts = keep.sum(1)
    m = min(N, -(-max(int(counts.max()), 1) // _pack_step(N)) * _pack_step(N))
    # kept points first, each NeRF's own order preserved (stable sort of a 0/1 key)
    order = torch.sort((~keep).to(torch.uint8), dim=1, stable=True).indices[:, :m]
    rgb_kept, sigma_kept = field(points.gather(1, order[..., None].expand(B, m, 3)))
    valid = torch.arange(m, device=points.device)[None] < counts[:, None]
    sigma_kept = sigma_kept * valid
    rgb = rgb_kept.new_zeros(B, N, rgb_kept.shape[-1]).scatter(
        1, order[..., None].expand(B, m, rgb_kept.shape[-1]), rgb_kept * valid[..., None])
    sigma = sigma_kept.new_zeros(B, N).scatter(1, order, sigma_kept)
    return rgb, sigma


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
        self.every = int(every)
        self.schedule = {"next": int(start), "interval": int(every)}
        ijk = torch.stack(torch.meshgrid(*[torch.arange(self.resolution)] * 3, indexing="ij"), -1)
        self._cell_corner = ijk.flip(-1).reshape(-1, 3).float()   # x fastest, as in cell_of

    def due(self, step: int) -> bool:
        return step == self.schedule["next"]

    def reschedule(self, step: int) -> None:
        """Next refresh ``every`` steps on while skipping pays, else after twice the last
        interval (a NeRF with density everywhere, as hash grids early on, stops paying
        for refreshes that skip nothing)."""
        interval = self.every if self.pays() else 2 * self.schedule["interval"]
        self.schedule = {"next": step + interval, "interval": interval}

    def cell_of(self, points: torch.Tensor) -> torch.Tensor:
        """Flat cell index [B, N] of ``points [B, N, 3]`` (x fastest; outside -> clamped)."""
        lo, hi = self.boxes[:, None, 0], self.boxes[:, None, 1]
        g = self.resolution
        cell = ((points - lo) / (hi - lo) * g).floor().long().clamp_(0, g - 1)
        return cell[..., 0] + g * (cell[..., 1] + g * cell[..., 2])

    def pays(self, limit: float = 0.75) -> bool:
        """Whether skipping can pay: every NeRF has at most ``limit`` of its cells occupied
        (the packed batch is as long as its fullest NeRF, and packing costs a little)."""
        return bool(self.occupied.float().mean(1).max() <= limit)

    def keep(self, points: torch.Tensor) -> torch.Tensor:
        """[B, N] bool: the sample lies in an occupied cell of its NeRF."""
        return self.occupied.gather(1, self.cell_of(points))

    @torch.no_grad()
    def update(self, field, delta: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Sample every cell once (uniformly inside it) and refresh the occupancy.

        ``delta`` [B]: the sample spacing, so that ``sigma * delta`` is the opacity scale
        nerfacc thresholds.
        """
        g, B = self.resolution, len(self.boxes)
        u = (self._cell_corner[None] + torch.rand(B, g**3, 3, generator=generator)) / g
        lo, hi = self.boxes[:, None, 0], self.boxes[:, None, 1]
        _, sigma = field(lo + u.to(lo.device) * (hi - lo))
        self.opacity = torch.maximum(self.opacity * self.decay, sigma.float() * delta[:, None])
        level = self.opacity.mean(1, keepdim=True).clamp(max=self.threshold)
        self.occupied = self.opacity > level

    def state_dict(self) -> dict:
        return {"opacity": self.opacity, "occupied": self.occupied, **self.schedule}

    def load_state_dict(self, state: dict) -> None:
        self.opacity = state["opacity"].to(self.opacity.device)
        self.occupied = state["occupied"].to(self.occupied.device)
        self.schedule = {"next": int(state["next"]), "interval": int(state["interval"])}
