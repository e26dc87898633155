"""Graph shard store: ``results/graphs/{arch}/{shard}.zarr``.

A NeRF shard becomes its architecture's topology, stored once, plus one row of edge
values per NeRF. Arrays: ``x`` int64 [n_nodes, 3], ``edge_index`` int64 [2, E],
``edge_attr`` float32 [E, 5] (layer, type, p0, p1, p2: every edge feature but the value),
``values`` float32 [n, E] (chunked per NeRF), ``object_ids`` str [n]. Attrs: ``arch``
(ArchSpec.to_dict()), ``source_shard``, ``nerf_config_hash``, ``dropped`` (copied from the
NeRF shard), ``n_nodes``, ``n_edges``. A graph's full edge features are
``[values[i, :, None], edge_attr]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nfws.fields.shard import read_nerf_shard, read_strings, spec_of
from nfws.graphs.topology import Topology, topology, values_from_weights
from nfws.store import open_zarr, write_zarr

TOPOLOGY_ARRAYS = ("x", "edge_index", "edge_attr")
GRAPH_ARRAYS = TOPOLOGY_ARRAYS + ("values", "object_ids")


def convert_shard(nerf_shard_path, out_path) -> dict:
    """Convert a NeRF shard into a graph shard; return {arch, n_nerfs, n_nodes, n_edges}.

    Raises when the shard is missing, its arrays do not match its ArchSpec, or any weight
    is not finite (the message names the shard and the offending NeRFs).
    """
    shard = read_nerf_shard(nerf_shard_path, arrays=())
    spec, object_ids = shard.spec, np.array(shard.object_ids, dtype=str)
    values = values_from_weights(spec, shard.params, source=str(nerf_shard_path))
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        raise ValueError(f"{nerf_shard_path}: non-finite weights in NeRFs of objects "
                         f"{object_ids[bad].tolist()}")
    topo = topology(spec)
    write_zarr(
        out_path,
        {"x": topo.x, "edge_index": topo.edge_index, "edge_attr": topo.edge_attr,
         "values": values, "object_ids": object_ids},
        attrs={"arch": spec.to_dict(), "source_shard": str(nerf_shard_path),
               "nerf_config_hash": shard.config_hash, "dropped": shard.dropped,
               "n_nodes": topo.n_nodes, "n_edges": topo.n_edges},
        chunks={"x": topo.x.shape, "edge_index": topo.edge_index.shape,
                "edge_attr": topo.edge_attr.shape, "values": (1, topo.n_edges)},
    )
    return {"arch": spec.name, "n_nerfs": len(values), "n_nodes": topo.n_nodes,
            "n_edges": topo.n_edges}


@dataclass(frozen=True, eq=False)
class GraphShard:
    """An opened graph shard: its (verified) topology, its values as a lazy zarr array."""

    path: Path
    topology: Topology
    values: object           # zarr array [n, E] float32, read on demand
    object_ids: np.ndarray   # str [n]

    @property
    def arch(self) -> str:
        return self.topology.spec.name

    def read_values(self, rows: np.ndarray) -> np.ndarray:
        """[len(rows), E] float32 values of the given NeRF rows (any order)."""
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        out = np.empty((len(rows), self.topology.n_edges), dtype=np.float32)
        if len(rows):
            out[order] = self.values.get_orthogonal_selection((rows[order], slice(None)))
        return out


def open_graph_shard(path) -> GraphShard:
    """Open and validate a graph shard written by :func:`convert_shard`."""
    root = open_zarr(path, required=list(GRAPH_ARRAYS))
    spec = spec_of(dict(root.attrs), path)
    x, edge_index, edge_attr = (root[k][...] for k in TOPOLOGY_ARRAYS)
    values, object_ids = root["values"], read_strings(root["object_ids"])
    topo = topology(spec)
    if values.shape != (len(object_ids), topo.n_edges):
        raise ValueError(f"{path}: values has shape {values.shape}, expected "
                         f"[{len(object_ids)}, {topo.n_edges}]")
    if not (np.array_equal(x, topo.x) and np.array_equal(edge_index, topo.edge_index)
            and np.array_equal(edge_attr, topo.edge_attr)):
        raise ValueError(f"{path}: stored topology differs from the current graph layout of "
                         f"architecture {spec.name!r}; rebuild the shard")
    return GraphShard(Path(path), topo, values, object_ids)
