"""Parameter graph of the bias-free tiny-cuda-nn MLP that ends every NeRF.

One node per neuron; layer ``k``'s weight ``[out, in]`` gives one edge per entry, from
input neuron ``i`` to output neuron ``o``, in row-major order. Hidden neurons carry
neuron index 0: their order is a symmetry of the network, so a permutation of them must
permute graph nodes and change no feature. Output nodes keep their index (0..3 are
r, g, b, density; 4..15 are tiny-cuda-nn's padded outputs, kept so the graph holds every
parameter). Edges leaving a bias node (a padded, constant-1 input) have type ``bias``.
"""
from __future__ import annotations

import numpy as np

from nfws.fields.spec import ArchSpec
from nfws.graphs.parts import GraphParts
from nfws.graphs.vocab import EDGE_TYPE


def add_mlp(parts: GraphParts, spec: ArchSpec, input_ids: np.ndarray, input_is_bias: np.ndarray,
            input_layer: int, offsets: dict[str, int]) -> None:
    """Append the MLP's neurons and weight edges after the given input-layer nodes.

    ``input_ids[i]`` is the node of input column ``i`` of ``mlp.0``; ``input_is_bias``
    marks padded columns; ``offsets`` maps parameter names to their start in the flat
    parameter vector.
    """
    shapes = spec.mlp_shapes()
    prev = np.asarray(input_ids, dtype=np.int64)
    for k, (n_out, n_in) in enumerate(shapes):
        if n_in != len(prev):
            raise ValueError(f"architecture {spec.name!r}: mlp.{k} reads {n_in} inputs, "
                             f"graph layer has {len(prev)} nodes")
        last = k == len(shapes) - 1
        layer = input_layer + k
        index = np.arange(n_out) if last else np.zeros(n_out, dtype=np.int64)
        out = parts.add_nodes(layer + 1, "output" if last else "neuron", index)
        edge_type = np.full(n_in, EDGE_TYPE["weight"])
        if k == 0:
            edge_type[np.asarray(input_is_bias, dtype=bool)] = EDGE_TYPE["bias"]
        parts.add_edges(
            src=np.broadcast_to(prev[None, :], (n_out, n_in)),
            dst=np.broadcast_to(out[:, None], (n_out, n_in)),
            layer=layer,
            edge_type=np.broadcast_to(edge_type[None, :], (n_out, n_in)),
            gather=offsets[f"mlp.{k}"] + np.arange(n_out * n_in),
        )
        prev = out
