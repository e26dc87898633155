"""tiny-cuda-nn's multiresolution hash grid (Instant-NGP), reproduced bit for bit in indexing.

Level ``l`` has scale ``s_l = base * 2^(l * log2 per_level_scale) - 1`` (float32) and
resolution ``ceil(s_l) + 1``. A point ``x`` in [0, 1]^3 sits at ``pos = x * s_l + 0.5``
(a fused multiply-add in float32); its cell corner is ``floor(pos)`` and the trilinear
weights come from ``pos - floor(pos)``. A corner's entry is the dense index
``sum_d c_d * res^d`` (d = 0 fastest) when the level's grid fits its table, otherwise the
spatial hash ``xor_d (c_d * P_d)`` in uint32 arithmetic; either way taken modulo the
level's size. Corner ``k`` (0..7) offsets dimension ``d`` by bit ``d`` of ``k``.

:func:`hash_corners` is the reusable part (the SANE tokeniser reads tables through it);
:func:`hash_encoding` interpolates a stack of tables.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from nfws.fields.spec import ArchSpec

PRIMES = (1, 2654435761, 805459861)
UINT32 = 0xFFFFFFFF


def _check_spec(spec: ArchSpec) -> None:
    if spec.family != "HASH":
        raise ValueError(f"architecture {spec.name!r}: hash grid needs family HASH, got {spec.family}")


def _corner_terms(cell: torch.Tensor, level: int, spec: ArchSpec) -> torch.Tensor:
    """Per-dimension index terms ``[..., 3, 2]`` of the cell's low and high corner.

    Dense: ``c_d * res^d`` (summed over d later); hashed: ``(c_d * P_d) mod 2^32`` (xor-ed
    later). Both index formulas are separable over dimensions, so 2 x 3 terms make all 8.
    """
    c = (cell.unsqueeze(-1) + torch.tensor([0, 1], device=cell.device)) & UINT32   # [..., 3, 2]
    if spec.level_is_dense(level):
        res = spec.level_resolution(level)
        strides = torch.tensor([1, res, res * res], device=cell.device).view(3, 1)
        return c * strides
    return (c * torch.tensor(PRIMES, device=cell.device).view(3, 1)) & UINT32


def hash_corners(x01: torch.Tensor, spec: ArchSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Table entries and trilinear weights of the 8 cell corners of each point at each level.

    x01 ``[..., 3]`` in [0, 1]. Returns ``indices`` int64 ``[..., L, 8]`` (entry within the
    level, < ``spec.level_sizes()[l]``) and ``weights`` ``[..., L, 8]`` (float32, or x01's
    dtype if wider) summing to 1 over the corners. No gradient flows to the points.
    """
    _check_spec(spec)
    if x01.shape[-1] != 3:
        raise ValueError(f"hash_corners: points must have 3 coordinates, got shape {tuple(x01.shape)}")
    x64 = x01.detach().double()
    wdtype = torch.promote_types(x01.dtype, torch.float32)
    indices, weights = [], []
    for level, size in enumerate(spec.level_sizes()):
        scale = float(torch.tensor(spec.level_scale(level), dtype=torch.float32))
        # float32 fma(x, scale, 0.5): the float64 product of two float32 values is exact
        pos = (x64 * scale + 0.5).float()
        cell = torch.floor(pos)
        frac = (pos - cell).to(wdtype)
        terms = _corner_terms(cell.to(torch.int64), level, spec)
        t0, t1, t2 = terms[..., 0, :], terms[..., 1, :], terms[..., 2, :]
        # corner k = 4 z + 2 y + x: bit d of k picks the high corner along dimension d
        t2, t1, t0 = t2[..., :, None, None], t1[..., None, :, None], t0[..., None, None, :]
        index = ((t0 + t1 + t2) & UINT32) if spec.level_is_dense(level) else (t0 ^ t1 ^ t2)
        index = index.flatten(-3)
        index = index & (size - 1) if size & (size - 1) == 0 else index % size
        w = torch.stack([1.0 - frac, frac], dim=-1)                          # [..., 3, 2]
        w = w[..., 2, :, None, None] * w[..., 1, None, :, None] * w[..., 0, None, None, :]
        indices.append(index)
        weights.append(w.flatten(-3))
    return torch.stack(indices, dim=-2), torch.stack(weights, dim=-2)


class _WeightedGather(torch.autograd.Function):
    """rows ``[M, F]`` = sum_k weights[m, k] * table[index[m, k]].

    The forward pass is ``embedding_bag``; the backward pass is a single ``index_add_``,
    several times faster on the CPU than ``embedding_bag``'s sort-based backward.
    """

    @staticmethod
    def forward(ctx, table, index, weights):
        ctx.save_for_backward(index, weights)
        ctx.n_rows = table.shape[0]
        return F.embedding_bag(index, table, per_sample_weights=weights, mode="sum")

    @staticmethod
    def backward(ctx, grad):
        index, weights = ctx.saved_tensors
        contrib = (weights.unsqueeze(-1).to(grad.dtype) * grad.unsqueeze(1)).reshape(-1, grad.shape[-1])
        grad_table = grad.new_zeros(ctx.n_rows, grad.shape[-1])
        return grad_table.index_add_(0, index.reshape(-1), contrib), None, None


def hash_encoding(tables: torch.Tensor, x01: torch.Tensor, spec: ArchSpec) -> torch.Tensor:
    """Interpolated hash-grid features of a stack of fields.

    tables ``[B, L, T, F]``, x01 ``[B, N, 3]``. Returns ``[B, N, L * F]``, level-major like
    tiny-cuda-nn's encoding output. One gather over all fields, levels and corners.
    """
    b, n_levels, t, n_feat = tables.shape
    index, weights = hash_corners(x01, spec)                                  # [B, N, L, 8]
    base = (torch.arange(b, device=x01.device).view(b, 1, 1, 1) * (n_levels * t)
            + torch.arange(n_levels, device=x01.device).view(1, 1, n_levels, 1) * t)
    feats = _WeightedGather.apply(tables.reshape(b * n_levels * t, n_feat),
                                  (index + base).reshape(-1, 8),
                                  weights.reshape(-1, 8).to(tables.dtype))
    return feats.reshape(b, x01.shape[1], n_levels * n_feat)
