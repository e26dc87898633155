"""tiny-cuda-nn's multiresolution hash grid (Instant-NGP), reproduced bit for bit in indexing.

Level ``l`` has scale ``s_l = base * 2^(l * log2 per_level_scale) - 1`` (float32) and
resolution ``ceil(s_l) + 1``. A point ``x`` in [0, 1]^3 sits at ``pos = x * s_l + 0.5``
(a fused multiply-add in float32); its cell corner is ``floor(pos)`` and the trilinear
weights come from ``pos - floor(pos)``. A corner's entry is the dense index
``sum_d c_d * res^d`` (d = 0 fastest) when the level's grid fits its table, otherwise the
spatial hash ``xor_d (c_d * P_d)`` in uint32 arithmetic; either way taken modulo the
level's size. Corner ``k`` (0..7) offsets dimension ``d`` by bit ``d`` of ``k``.

:func:`hash_corners` is the reusable part (the SANE tokeniser reads tables through it);
:func:`hash_encoding` interpolates a stack of tables. Both compute with the points as the
innermost (contiguous) axis: broadcasting over trailing axes of size 2 or 8 made the
indexing ~6x slower on the CPU.
"""
from __future__ import annotations

import torch

from nfws.fields.spec import ArchSpec

PRIMES = (1, 2654435761, 805459861)
UINT32 = 0xFFFFFFFF


def _check_spec(spec: ArchSpec) -> None:
    if spec.family != "HASH":
        raise ValueError(f"architecture {spec.name!r}: hash grid needs family HASH, got {spec.family}")


def _as_int32(value: int) -> int:
    """The int32 with the same 32 bits as the uint32 ``value``."""
    return value - (1 << 32) if value >= 1 << 31 else value


#: PRIMES as int32 bit patterns: int32 products and xors wrap to the same low 32 bits as
#: uint32 ones, so a hashed level (a power-of-two table) indexes in int32 at half the
#: memory traffic of int64.
PRIMES_INT32 = tuple(_as_int32(p) for p in PRIMES)


def _corner_terms(cell: torch.Tensor, mults, dtype) -> tuple[torch.Tensor, ...]:
    """``c_d * m_d`` for the low and high corner along each dimension, shaped to broadcast
    over the 8 corners ``k = 4 z + 2 y + x`` (bit d of k picks the high corner along d):
    x ``[1, 1, 2, P]``, y ``[1, 2, 1, P]``, z ``[2, 1, 1, P]``."""
    device = cell.device
    c = cell.to(dtype).unsqueeze(1) + torch.tensor([0, 1], dtype=dtype, device=device).view(2, 1)
    terms = c * torch.tensor(mults, dtype=dtype, device=device).view(3, 1, 1)      # [3, 2, P]
    return terms[0][None, None], terms[1][None, :, None], terms[2][:, None, None]


def _level_corners(points: torch.Tensor, level: int, spec: ArchSpec,
                   index: torch.Tensor, weight: torch.Tensor) -> None:
    """Write the entries ``index [8, P]`` (int64) and trilinear weights ``weight [8, P]`` of
    one level for ``points [3, P]`` (float64). Points are the innermost axis so every op
    runs on contiguous vectors."""
    scale = float(torch.tensor(spec.level_scale(level), dtype=torch.float32))
    # float32 fma(x, scale, 0.5): the float64 product of two float32 values is exact
    pos = (points * scale + 0.5).float()
    cell = torch.floor(pos)
    frac = (pos - cell).to(weight.dtype)
    size = spec.level_sizes()[level]
    if spec.level_is_dense(level):
        # dense terms c_d * res^d summed, taken mod 2^32 as tiny-cuda-nn's uint32 sum: int64
        # holds them without overflow, so the wrap is exact for any modulus, also for
        # points outside [0, 1]
        res = spec.level_resolution(level)
        t0, t1, t2 = _corner_terms(cell, (1, res, res * res), torch.int64)
        entry = (t0 + t1 + t2) & UINT32
        entry = entry & (size - 1) if size & (size - 1) == 0 else entry % size
    else:
        if size & (size - 1):
            raise ValueError(f"architecture {spec.name!r}: hashed level {level} has {size} "
                             "entries; hashed levels need a power of two")
        t0, t1, t2 = _corner_terms(cell, PRIMES_INT32, torch.int32)
        entry = torch.bitwise_xor(t2, t1).bitwise_xor(t0).bitwise_and_(size - 1)
    index.view(2, 2, 2, -1).copy_(entry)
    w = torch.stack([1.0 - frac, frac], dim=1)                              # [3, 2, P]
    torch.mul(w[2][:, None, None] * w[1][None, :, None], w[0][None, None],
              out=weight.view(2, 2, 2, -1))


def _corners_level_major(x01: torch.Tensor, spec: ArchSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Entries and weights ``[L, 8, P]`` of the points ``x01 [..., 3]`` flattened to P."""
    _check_spec(spec)
    if x01.shape[-1] != 3:
        raise ValueError(f"hash_corners: points must have 3 coordinates, got shape {tuple(x01.shape)}")
    points = x01.detach().reshape(-1, 3).to(torch.float64).t().contiguous()    # [3, P]
    wdtype = torch.promote_types(x01.dtype, torch.float32)
    shape = (spec.hash_levels, 8, points.shape[1])
    index = torch.empty(shape, dtype=torch.int64, device=x01.device)
    weight = torch.empty(shape, dtype=wdtype, device=x01.device)
    for level in range(spec.hash_levels):
        _level_corners(points, level, spec, index[level], weight[level])
    return index, weight


def hash_corners(x01: torch.Tensor, spec: ArchSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Table entries and trilinear weights of the 8 cell corners of each point at each level.

    x01 ``[..., 3]`` in [0, 1]. Returns ``indices`` int64 ``[..., L, 8]`` (entry within the
    level, < ``spec.level_sizes()[l]``) and ``weights`` ``[..., L, 8]`` (float32, or x01's
    dtype if wider) summing to 1 over the corners. No gradient flows to the points. Both
    are views of level-major storage (see :func:`hash_encoding`).
    """
    index, weight = _corners_level_major(x01, spec)
    shape = (*x01.shape[:-1], spec.hash_levels, 8)
    return index.permute(2, 0, 1).reshape(shape), weight.permute(2, 0, 1).reshape(shape)


class _CornerGather(torch.autograd.Function):
    """``out[l, f, p] = sum_k weights[l, k, p] * table[rows[l, k, p], f]``.

    table ``[n_rows, F]``, rows ``[L, 8, P]``. Forward: one ``index_select`` per feature
    column; backward: one ``index_add_`` per feature column. The points stay the innermost
    axis of every tensor, so no op broadcasts over tiny trailing axes (the row-wise
    ``embedding_bag`` version with its weighting spent most of its time there).
    """

    @staticmethod
    def forward(ctx, table, rows, weights):
        ctx.save_for_backward(rows, weights)
        ctx.table_shape = table.shape
        flat = rows.reshape(-1)
        return torch.stack([(table[:, f].index_select(0, flat).view_as(weights) * weights).sum(1)
                            for f in range(table.shape[1])], dim=1)

    @staticmethod
    def backward(ctx, grad):
        rows, weights = ctx.saved_tensors
        grad_table = grad.new_zeros(ctx.table_shape)
        flat = rows.reshape(-1)
        for f in range(ctx.table_shape[1]):
            contrib = weights.to(grad.dtype) * grad[:, f].unsqueeze(1)
            grad_table[:, f].index_add_(0, flat, contrib.reshape(-1))
        return grad_table, None, None


def hash_encoding(tables: torch.Tensor, x01: torch.Tensor, spec: ArchSpec) -> torch.Tensor:
    """Interpolated hash-grid features of a stack of fields.

    tables ``[B, L, T, F]``, x01 ``[B, N, 3]``. Returns ``[B, N, L * F]``, level-major like
    tiny-cuda-nn's encoding output, stored feature-major (points innermost in memory) so
    the MLP's first matmul reads it as a transposed operand without a copy. One gather
    per feature over all fields, levels and corners.
    """
    b, n_levels, t, n_feat = tables.shape
    n = x01.shape[1]
    index, weights = _corners_level_major(x01, spec)                         # [L, 8, B * N]
    base = (torch.arange(n_levels, device=x01.device).view(n_levels, 1, 1, 1) * t
            + torch.arange(b, device=x01.device).view(1, 1, b, 1) * (n_levels * t))
    rows = (index.view(n_levels, 8, b, n) + base).view(n_levels, 8, b * n)
    feats = _CornerGather.apply(tables.reshape(b * n_levels * t, n_feat), rows,
                                weights.to(tables.dtype))                  # [L, F, B * N]
    return feats.reshape(n_levels * n_feat, b, n).permute(1, 2, 0)          # [B, N, L * F]
