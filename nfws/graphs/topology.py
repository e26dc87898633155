"""One parameter graph per architecture, and the gather map that fills it with a NeRF.

Every NeRF of an architecture has the same graph; only edge values differ. So
:func:`topology` builds the graph once per :class:`ArchSpec` together with ``gather``: the
position of each edge's value in the NeRF's flat parameter vector (``spec.param_shapes()``
flattened row-major and concatenated in that order). A shard converts with one
fancy-index, ``flat[:, gather]``; the inverse is one scatter. Node features are (layer,
index, type), edge attrs (layer, type, p0, p1, p2).
Layout per family: docs/recipes.md, "Parameter graphs as built".
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from nfws.fields.spec import ArchSpec, pad16
from nfws.graphs import hashgrid, triplane
from nfws.graphs.mlp import add_mlp
from nfws.graphs.parts import GraphParts


@dataclass(frozen=True, eq=False)
class Topology:
    """The graph shared by every NeRF of ``spec``; arrays are read-only."""

    spec: ArchSpec
    x: np.ndarray            # int64 [n_nodes, 3] (layer, index, type)
    edge_index: np.ndarray   # int64 [2, E] (source, target)
    edge_attr: np.ndarray    # float32 [E, 5] (layer, type, p0, p1, p2): all but the value
    gather: np.ndarray       # int64 [E] position of each edge value in the flat parameters

    @property
    def n_nodes(self) -> int:
        return len(self.x)

    @property
    def n_edges(self) -> int:
        return self.edge_index.shape[1]


def param_offsets(spec: ArchSpec) -> dict[str, int]:
    """Start of each parameter tensor in the flat parameter vector."""
    offsets, start = {}, 0
    for name, shape in spec.param_shapes().items():
        offsets[name] = start
        start += int(np.prod(shape))
    return offsets


def n_flat_params(spec: ArchSpec) -> int:
    return sum(int(np.prod(s)) for s in spec.param_shapes().values())


def _add_input_layer(parts: GraphParts, spec: ArchSpec, layer: int, encoding_ids: np.ndarray):
    """MLP input nodes in ``mlp.0`` column order: frequency entries, then the grid's
    features (tri-plane channels or hash features), then padding."""
    freq = parts.add_nodes(layer, "input", np.arange(spec.freq_dim))
    n_pad = pad16(spec.encoding_dim) - spec.encoding_dim
    pad = parts.add_nodes(layer, "bias", np.zeros(n_pad, dtype=np.int64))
    ids = np.concatenate([freq, encoding_ids, pad])
    is_bias = np.zeros(len(ids), dtype=bool)
    is_bias[len(ids) - n_pad:] = True
    return ids, is_bias


@functools.lru_cache(maxsize=32)
def topology(spec: ArchSpec) -> Topology:
    """Build the parameter graph of ``spec`` (cached: specs are frozen and hashable)."""
    parts = GraphParts()
    offsets = param_offsets(spec)
    if spec.family == "MLP":
        input_layer, encoding_ids = 0, np.zeros(0, dtype=np.int64)
    elif spec.family == "TRI":
        input_layer = 1
        encoding_ids = triplane.add_channel_nodes(parts, spec, input_layer)
    else:
        input_layer = 1
        encoding_ids = hashgrid.add_feature_nodes(parts, spec, input_layer)
    input_ids, is_bias = _add_input_layer(parts, spec, input_layer, encoding_ids)
    if spec.family == "TRI":
        triplane.add_triplane(parts, spec, encoding_ids, offsets["triplane"])
    elif spec.family == "HASH":
        hashgrid.add_hashgrid(parts, spec, encoding_ids, offsets["hash"])
    add_mlp(parts, spec, input_ids, is_bias, input_layer, offsets)
    x, edge_index, edge_attr, gather = parts.finish()
    for arr in (x, edge_index, edge_attr, gather):
        arr.setflags(write=False)
    return Topology(spec, x, edge_index, edge_attr, gather)


def flatten_params(spec: ArchSpec, arrays: dict[str, np.ndarray], source: str = "weights") -> np.ndarray:
    """[n, P] float32 flat parameter vectors of a stack of NeRFs; ``source`` names the
    origin (a shard path) in errors."""
    blocks, n = [], None
    for name, shape in spec.param_shapes().items():
        if name not in arrays:
            raise ValueError(f"{source}: missing parameter array {name!r} of "
                             f"architecture {spec.name!r}")
        arr = np.asarray(arrays[name])
        if arr.ndim != len(shape) + 1 or tuple(arr.shape[1:]) != tuple(shape):
            raise ValueError(f"{source}: array {name!r} has shape {tuple(arr.shape)}, "
                             f"architecture {spec.name!r} needs [n, {', '.join(map(str, shape))}]")
        if n is not None and arr.shape[0] != n:
            raise ValueError(f"{source}: array {name!r} holds {arr.shape[0]} NeRFs, others {n}")
        n = arr.shape[0]
        blocks.append(arr.reshape(n, -1).astype(np.float32, copy=False))
    return np.concatenate(blocks, axis=1)


def values_from_weights(spec: ArchSpec, arrays: dict[str, np.ndarray],
                        source: str = "weights") -> np.ndarray:
    """[n, E] edge values of a stack of NeRFs: one gather over the flat parameters."""
    return flatten_params(spec, arrays, source)[:, topology(spec).gather]


def weights_from_values(spec: ArchSpec, values: np.ndarray) -> dict[str, np.ndarray]:
    """Inverse of :func:`values_from_weights`: ``values`` [n, E] or [E] → parameter arrays
    ([n, *shape] or [*shape]); hash entries beyond a level's true size come back as zero."""
    topo = topology(spec)
    values = np.asarray(values, dtype=np.float32)
    single = values.ndim == 1
    values = values[None] if single else values
    if values.ndim != 2 or values.shape[1] != topo.n_edges:
        raise ValueError(f"architecture {spec.name!r}: values must be [n, {topo.n_edges}], "
                         f"got {list(values.shape)}")
    flat = np.zeros((len(values), n_flat_params(spec)), dtype=np.float32)
    flat[:, topo.gather] = values
    out, offsets = {}, param_offsets(spec)
    for name, shape in spec.param_shapes().items():
        block = flat[:, offsets[name]: offsets[name] + int(np.prod(shape))]
        out[name] = block.reshape((len(values),) + tuple(shape))
        if single:
            out[name] = out[name][0]
    return out
