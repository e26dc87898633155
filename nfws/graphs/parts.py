"""A growing parameter graph: node rows, edges and where each edge's value comes from.

The family builders (MLP, tri-plane, hash grid) append their pieces here; the result is
frozen into a :class:`nfws.graphs.topology.Topology`. Everything is vectorised numpy so an
architecture's graph (tens of thousands of edges) is built in milliseconds.
"""
from __future__ import annotations

import numpy as np

from nfws.graphs.vocab import EDGE_TYPE, NODE_TYPE


class GraphParts:
    """Accumulates node features (layer, index, type) and edges with static attributes."""

    def __init__(self):
        self.n_nodes = 0
        self._nodes: list[np.ndarray] = []
        self._src: list[np.ndarray] = []
        self._dst: list[np.ndarray] = []
        self._attr: list[np.ndarray] = []
        self._gather: list[np.ndarray] = []

    def add_nodes(self, layer: int, node_type: str, index: np.ndarray) -> np.ndarray:
        """Append one node per entry of ``index`` (the neuron-index feature); return their ids."""
        index = np.asarray(index, dtype=np.int64)
        rows = np.empty((len(index), 3), dtype=np.int64)
        rows[:, 0] = layer
        rows[:, 1] = index
        rows[:, 2] = NODE_TYPE[node_type]
        self._nodes.append(rows)
        ids = np.arange(self.n_nodes, self.n_nodes + len(index), dtype=np.int64)
        self.n_nodes += len(index)
        return ids

    def add_edges(self, src: np.ndarray, dst: np.ndarray, layer: int, edge_type,
                  gather: np.ndarray, extras: np.ndarray | None = None) -> None:
        """Append edges ``src → dst``; ``gather`` indexes each edge's value in the flat
        parameter vector; ``edge_type`` is one name or an array of type ids; ``extras`` are
        the (p0, p1, p2) columns (zeros when omitted)."""
        src = np.asarray(src, dtype=np.int64).ravel()
        n = len(src)
        attr = np.zeros((n, 5), dtype=np.float32)
        attr[:, 0] = layer
        attr[:, 1] = EDGE_TYPE[edge_type] if isinstance(edge_type, str) else np.ravel(edge_type)
        if extras is not None:
            attr[:, 2:] = np.asarray(extras, dtype=np.float32).reshape(n, 3)
        self._src.append(src)
        self._dst.append(np.asarray(dst, dtype=np.int64).ravel())
        self._attr.append(attr)
        self._gather.append(np.asarray(gather, dtype=np.int64).ravel())

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(node features [n, 3], edge_index [2, E], static edge attrs [E, 5], gather [E])."""
        return (np.concatenate(self._nodes), np.stack([np.concatenate(self._src),
                                                       np.concatenate(self._dst)]),
                np.concatenate(self._attr), np.concatenate(self._gather))
