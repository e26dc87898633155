"""Reference-centred GMN embeddings: each NeRF's embedding minus its architecture's
reference embedding, the encoder applied to the architecture's initial draw.

A change of depth, width or grid moves every embedding of an architecture by an offset
that depends on the topology alone, far more than NeRFs of one architecture differ from
each other. The reference carries the same offset and nothing from any test NeRF: it is
built from the architecture and the seed only (:func:`nfws.fields.stacks.initial_stack`'s
``shared`` draw, every NeRF's start under ``nerf.fit.init: shared``). Measurements:
docs/gmn.md, "Depth roles and reference-centred embeddings".
"""
from __future__ import annotations

import numpy as np

from nfws.fields.spec import ArchSpec
from nfws.fields.stacks import initial_stack
from nfws.graphs.topology import values_from_weights

REFERENCES = ("none", "init")


def reference_values(spec: ArchSpec, seed: int) -> np.ndarray:
    """[E] edge values of the architecture's initial draw keyed on (seed, architecture)."""
    start = initial_stack(spec, ["reference"], "shared", int(seed))
    return values_from_weights(spec, start.state_arrays(), f"initial draw of {spec.name}")[0]


def reference_batcher(dataset, seed: int):
    """arch -> a one-graph batch of that architecture's reference, for a
    :class:`nfws.graphs.dataset.GraphDataset` (its shards give each architecture's spec)."""
    specs = {shard.arch: shard.topology.spec for shard in dataset.shards}

    def batch(arch: str):
        if arch not in specs:
            raise KeyError(f"no graph shard of architecture {arch!r} to build its reference from")
        return dataset.batcher.collate([arch], [reference_values(specs[arch], seed)], [0],
                                       [f"reference:{arch}"])
    return batch
