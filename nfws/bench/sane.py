"""Benchmark of SANE's hash tokeniser: one batched gather for a whole training batch.

Baseline, measured in the same run on the same tables and points: tokenising the NeRFs
of the batch one at a time (the same function with a batch of one). Sizes are the
report's per NeRF (16 levels, 2 features, 380 points per NeRF, batch 32), with 2^14-entry
tables instead of Instant-NGP's 2^19 so 32 NeRFs fit comfortably in memory.
"""
from __future__ import annotations

import time

import torch

from nfws.fields.spec import ArchSpec
from nfws.sane.tokens import hash_tokens, sample_points

ARCH = ArchSpec("SANE-BENCH", "HASH", hidden_layers=4, width=64, hash_levels=16,
                hash_log2_T=14, hash_features=2, hash_base_res=16, hash_per_level_scale=1.38)
BATCH, POINTS, REPEATS = 32, 380, 5


def _best_seconds(fn) -> float:
    fn()
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def run() -> dict:
    gen = torch.Generator().manual_seed(0)
    tables = torch.randn(BATCH, ARCH.hash_levels, ARCH.hash_T, ARCH.hash_features, generator=gen)
    points = sample_points(BATCH, POINTS, gen)
    batched = _best_seconds(lambda: hash_tokens(tables, points, ARCH))
    looped = _best_seconds(lambda: [hash_tokens(tables[i:i + 1], points[i:i + 1], ARCH)
                                    for i in range(BATCH)])
    if not torch.equal(torch.cat([hash_tokens(tables[i:i + 1], points[i:i + 1], ARCH)
                                  for i in range(BATCH)]), hash_tokens(tables, points, ARCH)):
        raise RuntimeError("sane bench: batched and per-NeRF tokens differ")
    return {"name": "sane_hash_tokens", "unit": "NeRFs/s",
            "baseline": BATCH / looped, "ours": BATCH / batched, "ratio": looped / batched,
            "batch": BATCH, "points": POINTS, "levels": ARCH.hash_levels,
            "token_dim": 8 * ARCH.hash_levels * ARCH.hash_features}
