"""Per-NeRF random streams for batched training.

Each NeRF of a shard draws its rays, background colours, sample jitter and occupancy
probes from generators of its own, one per purpose, keyed on (seed, architecture, object
id, purpose), and every draw has a shape that depends on the configuration alone. A NeRF
therefore sees the same draws whether it is trained alone or in a shard of any size, in
any slot, with its rays split into any number of calls: resharding reproduces the same
NeRFs up to floating-point rounding, and a one-at-a-time run can be compared with a
batched one NeRF by NeRF on common random numbers.
"""
from __future__ import annotations

from typing import Sequence

import torch

from nfws.fields.stacks import keyed_generator

PURPOSES = ("rays", "background", "jitter", "cells")


class NerfStreams:
    """One generator per (NeRF, purpose) of a shard."""

    def __init__(self, seed: int, arch: str, object_ids: Sequence[str]):
        self.generators = {p: [keyed_generator(seed, arch, oid, p) for oid in object_ids]
                           for p in PURPOSES}

    def uniform(self, purpose: str, *shape: int, dtype=torch.float32) -> torch.Tensor:
        """[B, *shape] uniform draws in [0, 1) on the CPU: row b from NeRF b's stream."""
        return torch.stack([torch.rand(shape, generator=g, dtype=dtype)
                            for g in self.generators[purpose]])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {p: torch.stack([g.get_state() for g in gens]) for p, gens in self.generators.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for p, gens in self.generators.items():
            if p not in state:
                raise ValueError(f"random streams: the saved state has no {p!r} streams")
            if len(state[p]) != len(gens):
                raise ValueError(f"random streams: the saved state holds {len(state[p])} "
                                 f"{p!r} streams for {len(gens)} NeRFs")
            for g, s in zip(gens, state[p]):
                g.set_state(s.cpu().clone())  # a row of the stack: set_state wants its own storage
