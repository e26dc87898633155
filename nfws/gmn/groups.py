"""How a parameter graph's edges and nodes group by layer, type and depth role.

Value standardisation groups (graph, layer, edge type), the pooling weights that make each
(edge type, depth role) group weigh the same, and the depth-role layer codes that give nets
of any depth the node and edge kinds of their parent (``GMNEncoder(layer_code="role")``).
Measurements behind them: docs/gmn.md.
"""
from __future__ import annotations

import torch
from torch_geometric.utils import scatter

from nfws.graphs.vocab import EDGE_TYPE, EDGE_TYPES, NODE_TYPE


def layer_type_groups(graph: torch.Tensor, layer: torch.Tensor, etype: torch.Tensor) -> torch.Tensor:
    """Group ids 0..G-1 of edges by (graph, layer, edge type)."""
    key = (graph * (int(layer.max()) + 1) + layer) * len(EDGE_TYPES) + etype
    return torch.unique(key, return_inverse=True)[1]


def standardise_within(value: torch.Tensor, group: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(v - mean) / std within each group of edges (ids ``group``)."""
    mean = scatter(value, group, dim=0, reduce="mean")
    var = scatter((value - mean[group]) ** 2, group, dim=0, reduce="mean")
    return (value - mean[group]) / torch.sqrt(var[group] + eps)


def standardise_groups(value: torch.Tensor, graph: torch.Tensor, layer: torch.Tensor,
                       etype: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(v - mean) / std within each (graph, layer, edge type) group of edges."""
    return standardise_within(value, layer_type_groups(graph, layer, etype), eps)


def mlp_depth_roles(edge_graph: torch.Tensor, layer: torch.Tensor,
                    etype: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(role [E], first [E]): for weight and bias edges, their depth role within their
    graph's MLP (0 its first layer, 1 a hidden layer, 2 its last layer) and the layer index
    of that MLP's first layer of their type; role 3 and their own layer for other edges."""
    kind = edge_graph * len(EDGE_TYPES) + etype               # (graph, edge type)
    n_kinds = int(kind.max()) + 1 if len(kind) else 0
    first = layer.new_full((n_kinds,), torch.iinfo(torch.long).max).scatter_reduce(
        0, kind, layer, "amin")
    last = layer.new_full((n_kinds,), -1).scatter_reduce(0, kind, layer, "amax")
    role = torch.where(layer == first[kind], 0, torch.where(layer == last[kind], 2, 1))
    mlp_edge = (etype == EDGE_TYPE["weight"]) | (etype == EDGE_TYPE["bias"])
    return torch.where(mlp_edge, role, 3), torch.where(mlp_edge, first[kind], layer)


def edge_groups(edge_graph: torch.Tensor, layer: torch.Tensor, etype: torch.Tensor) -> torch.Tensor:
    """Weights [E] that make each graph's edge mean weigh its edge groups equally.

    A group is an edge type and, for weight and bias edges, a depth role within the
    graph's MLP (:func:`mlp_depth_roles`). A variant with another depth or width or fewer
    grid levels then changes how many edges each group has, not how much each group counts.
    """
    kind = edge_graph * len(EDGE_TYPES) + etype
    _, group = torch.unique(kind * 4 + mlp_depth_roles(edge_graph, layer, etype)[0],
                            return_inverse=True)
    size = torch.bincount(group).to(torch.float64)
    group_graph = torch.zeros_like(size, dtype=torch.long).scatter_(0, group, edge_graph)
    groups_per_graph = torch.bincount(group_graph, minlength=int(edge_graph.max()) + 1)
    return (1.0 / (size[group] * groups_per_graph[edge_graph])).float()


def role_edge_layers(layer: torch.Tensor, etype: torch.Tensor) -> torch.Tensor:
    """One graph's edge layer indices with its MLP's depth replaced by roles: the first
    layer keeps its index, every hidden layer gets the next one, the last layer the one after."""
    role, first = mlp_depth_roles(torch.zeros_like(layer), layer, etype)
    return torch.where(role < 3, first + role, layer)


def role_node_layers(layer: torch.Tensor, ntype: torch.Tensor) -> torch.Tensor:
    """One graph's node layer indices with its MLP's depth replaced by roles: every hidden
    neuron on the first hidden layer, the outputs on the next."""
    neuron, output = ntype == NODE_TYPE["neuron"], ntype == NODE_TYPE["output"]
    if not bool(neuron.any()):
        return layer
    hidden = layer[neuron].min()
    return torch.where(neuron, hidden, torch.where(output, hidden + 1, layer))
