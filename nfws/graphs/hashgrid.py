"""Parameter graph of a multiresolution hash grid (the GMN paper's construction).

Per level l: one node per table entry actually used (tiny-cuda-nn's size T_l =
``spec.level_sizes()[l]``, index = entry index within the level) and one node per feature
dimension; every entry node is joined to every feature node of its level, so the edge
of ``hash[l, e, f]`` runs from entry (l, e) to feature (l, f) and carries that value.
Edge extras: p0 = level index l (an integer, like the layer feature, so level l means
the same resolution in every architecture of the family), p1 = e / T_l in [0, 1) (the
entry's relative position in its table, comparable across table sizes), p2 = 0.
Feature nodes carry index l: features of one level are interchangeable (permuting them
with the matching ``mlp.0`` columns leaves the field unchanged), levels are not.
Entries beyond T_l are not parameters of the field and have no edge.
"""
from __future__ import annotations

import numpy as np

from nfws.fields.spec import ArchSpec
from nfws.graphs.parts import GraphParts


def add_feature_nodes(parts: GraphParts, spec: ArchSpec, layer: int) -> np.ndarray:
    """All levels' feature nodes, level-major: the first ``L·F`` inputs of ``mlp.0``."""
    levels = np.repeat(np.arange(spec.hash_levels), spec.hash_features)
    return parts.add_nodes(layer, "hash_feature", levels)


def add_hashgrid(parts: GraphParts, spec: ArchSpec, feature_ids: np.ndarray, offset: int) -> None:
    """Append entry nodes (layer 0) of every level and their edges to ``feature_ids``."""
    n_feat, table = spec.hash_features, spec.hash_T
    features = np.asarray(feature_ids).reshape(spec.hash_levels, n_feat)
    for level, size in enumerate(spec.level_sizes()):
        entries = parts.add_nodes(0, "hash_entry", np.arange(size))
        shape = (size, n_feat)
        extras = np.zeros(shape + (3,))
        extras[..., 0] = level
        extras[..., 1] = (np.arange(size) / size)[:, None]
        parts.add_edges(
            src=np.broadcast_to(entries[:, None], shape),
            dst=np.broadcast_to(features[level][None, :], shape),
            layer=0,
            edge_type="hash",
            gather=offset + level * table * n_feat + np.arange(size * n_feat),
            extras=extras,
        )
