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

#: [8, 3] corner offsets: corner k moves dimension d by bit d of k.
CORNER_OFFSETS = torch.tensor([[(k >> d) & 1 for d in range(3)] for k in range(8)])


def _level_constants(spec: ArchSpec, device) -> tuple[torch.Tensor, ...]:
    """Per-level float32 scale, resolution, table size and dense flag as [L] tensors."""
    if spec.family != "HASH":
        raise ValueError(f"architecture {spec.name!r}: hash grid needs family HASH, got {spec.family}")
    levels = range(spec.hash_levels)
    scale = torch.tensor([spec.level_scale(l) for l in levels], dtype=torch.float32, device=device)
    res = torch.tensor([spec.level_resolution(l) for l in levels], dtype=torch.int64, device=device)
    size = torch.tensor(spec.level_sizes(), dtype=torch.int64, device=device)
    dense = torch.tensor([spec.level_is_dense(l) for l in levels], device=device)
    return scale, res, size, dense


def hash_corners(x01: torch.Tensor, spec: ArchSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Table entries and trilinear weights of the 8 cell corners of each point at each level.

    x01 ``[..., 3]`` in [0, 1]. Returns ``indices`` int64 ``[..., L, 8]`` (entry within the
    level, < ``spec.level_sizes()[l]``) and ``weights`` ``[..., L, 8]`` in x01's dtype
    (float32 at least), summing to 1 over the corners.
    """
    if x01.shape[-1] != 3:
        raise ValueError(f"hash_corners: points must have 3 coordinates, got shape {tuple(x01.shape)}")
    scale, res, size, dense = _level_constants(spec, x01.device)
    # float32 fma(x, scale, 0.5): the float64 product of two float32 values is exact
    pos = (x01.detach().double().unsqueeze(-2) * scale.double().unsqueeze(-1) + 0.5).float()
    cell = torch.floor(pos)
    frac = (pos - cell).to(torch.promote_types(x01.dtype, torch.float32))   # [..., L, 3]
    offsets = CORNER_OFFSETS.to(x01.device)
    corner = cell.to(torch.int64).unsqueeze(-2) + offsets                    # [..., L, 8, 3]
    corner = corner & UINT32

    res_l = res.view(-1, 1)
    dense_index = (corner[..., 0] + corner[..., 1] * res_l + corner[..., 2] * res_l * res_l) & UINT32
    hashed_index = corner[..., 0] * PRIMES[0]
    for d in (1, 2):
        hashed_index = hashed_index ^ ((corner[..., d] * PRIMES[d]) & UINT32)
    index = torch.where(dense.view(-1, 1), dense_index, hashed_index) % size.view(-1, 1)

    w = torch.where(offsets.bool(), frac.unsqueeze(-2), 1.0 - frac.unsqueeze(-2))   # [..., L, 8, 3]
    return index, w.prod(dim=-1)


def hash_encoding(tables: torch.Tensor, x01: torch.Tensor, spec: ArchSpec) -> torch.Tensor:
    """Interpolated hash-grid features of a stack of fields.

    tables ``[B, L, T, F]``, x01 ``[B, N, 3]``. Returns ``[B, N, L * F]``, level-major like
    tiny-cuda-nn's encoding output. One fused gather-and-weight (``embedding_bag``) over
    all fields, levels and corners.
    """
    b, n_levels, t, n_feat = tables.shape
    index, weights = hash_corners(x01, spec)                                  # [B, N, L, 8]
    base = (torch.arange(b, device=x01.device).view(b, 1, 1, 1) * (n_levels * t)
            + torch.arange(n_levels, device=x01.device).view(1, 1, n_levels, 1) * t)
    flat = (index + base).reshape(-1, 8)
    feats = F.embedding_bag(flat, tables.reshape(b * n_levels * t, n_feat),
                            per_sample_weights=weights.reshape(-1, 8).to(tables.dtype), mode="sum")
    return feats.reshape(b, x01.shape[1], n_levels * n_feat)
