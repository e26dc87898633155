"""Reconstruction quality of fitted fields: PSNR (2D) and Chamfer distance (3D).

Shared by fitting (the scores of each fit) and evaluation, so it
sits below both and imports neither.

Chamfer distance (HyperDiffusion / PyTorch3D convention):
    CD(X, Y) = mean_{x∈X} min_{y∈Y} ‖x − y‖² + mean_{y∈Y} min_{x∈X} ‖x − y‖²
i.e. squared nearest distances, averaged in each direction and summed. Tables print it
×100 ("×1e-2" in the paper's wording). For a fitted occupancy field, X are vertices of the
marching-cubes mesh of its logit at level 0 (probability ½) on a grid over
[-bound, bound]³ and Y the ground-truth surface points, both subsampled to
``n_chamfer`` points. A field with no zero crossing on the grid has no surface: its CD is
NaN and the tables count such instances separately.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree
from skimage.measure import marching_cubes

from nfws.config_files import Section

#: On the CPU a call evaluates at most this many (instance, point) pairs: every activation
#: then stays in cache between one layer and the next (a 130 x 8,192 x 48 one is 200 MB).
CPU_EVAL_ROWS = 1 << 15


@dataclass(frozen=True)
class ReconConfig(Section):
    """The ``lora.fit`` keys of the scoring: marching-cubes grid, Chamfer points, chunk."""

    SECTION = "lora.fit"
    mc_resolution: int
    mc_bound: float
    n_chamfer: int
    eval_chunk: int


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per instance of colours in [0, 1]; pred [B, ...] is clamped to [0, 1]."""
    mse = (pred.clamp(0, 1) - target).pow(2).reshape(len(pred), -1).mean(1)
    return 10 * torch.log10(1.0 / mse)


def chamfer_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """Symmetric Chamfer distance with squared nearest distances (see module doc); nearest
    neighbours from a k-d tree, exact in float64."""
    if len(x) == 0 or len(y) == 0:
        raise ValueError("chamfer_distance: empty point set")
    a, b = (t.detach().cpu().double().numpy() for t in (x, y))

    def one_way(p, q):
        return float(np.mean(cKDTree(q).query(p, k=1)[0] ** 2))

    return one_way(a, b) + one_way(b, a)


def grid_points(resolution: int, bound: float) -> torch.Tensor:
    """Grid vertices [R³, 3] over [-bound, bound]³ in (x, y, z) index order."""
    c = torch.linspace(-bound, bound, resolution)
    return torch.stack(torch.meshgrid(c, c, c, indexing="ij"), -1).reshape(-1, 3)


@torch.no_grad()
def evaluate_field(field, n_instances: int, points: torch.Tensor, chunk: int,
                   device) -> torch.Tensor:
    """Evaluate ``field(points [B, n, d]) → [B, n, c]`` on shared points, at most ``chunk``
    points a call (on the CPU also at most :data:`CPU_EVAL_ROWS` / B)."""
    if torch.device(device).type == "cpu":
        chunk = max(1, min(chunk, CPU_EVAL_ROWS // max(n_instances, 1)))
    outs = []
    for i in range(0, len(points), chunk):
        p = points[i:i + chunk].to(device).unsqueeze(0).expand(n_instances, -1, -1)
        outs.append(field(p).cpu())
    return torch.cat(outs, 1)


def mesh_vertices(logits: np.ndarray, bound: float) -> np.ndarray | None:
    """Marching-cubes vertices of the level-0 surface of a logit grid [R, R, R]."""
    if not (logits.min() < 0 < logits.max()):
        return None
    r = logits.shape[0]
    verts, _, _, _ = marching_cubes(logits, level=0.0, spacing=(2 * bound / (r - 1),) * 3)
    return verts - bound


def _subsample(points: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    if len(points) <= n:
        return points
    return points[torch.randperm(len(points), generator=generator)[:n]]


def reconstruction_scores(field, indices, targets, cfg: dict, seed: int, device) -> np.ndarray:
    """PSNR (image targets) or Chamfer distance (occupancy) per fitted instance.

    ``field`` maps points [B, n, d] → outputs [B, n, c] for the B instances ``indices``.
    """
    cfg = ReconConfig.pick(cfg)
    idx = torch.as_tensor(np.asarray(indices))
    if targets.kind == "image":
        pred = evaluate_field(field, len(idx), targets.coords, cfg.eval_chunk, device)
        return psnr(pred, targets.values[idx]).numpy()
    res, bound = int(cfg.mc_resolution), float(cfg.mc_bound)
    logits = evaluate_field(field, len(idx), grid_points(res, bound), cfg.eval_chunk, device)
    gen = torch.Generator().manual_seed(seed)
    scores = []
    for b, i in enumerate(idx.tolist()):
        verts = mesh_vertices(logits[b, :, 0].reshape(res, res, res).numpy(), bound)
        if verts is None:
            scores.append(math.nan)
            continue
        ours = _subsample(torch.from_numpy(verts.copy()).float(), cfg.n_chamfer, gen)
        truth = _subsample(targets.surface[i], cfg.n_chamfer, gen)
        scores.append(chamfer_distance(ours, truth))
    return np.asarray(scores, dtype=np.float64)
