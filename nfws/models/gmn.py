"""Graph Meta-Network encoder (Lim et al., as used by Ballerini et al.) for parameter graphs.

A NeRF of any architecture becomes a graph (``nfws.graphs``); this encoder maps a batch of
such graphs to one embedding per graph. Message passing with node and edge features,
directed edges, no global feature; the embedding is a mean over each graph's edges, so
graphs of any size share one latent space.

Permutation symmetry: hidden neurons of an MLP can be permuted without changing the
function, and the graph of the permuted NeRF differs only by which node carries which
neuron index. The encoder therefore ignores the neuron index of hidden-neuron nodes (it
is meaningful for inputs, outputs, tri-plane and hash nodes, whose order is fixed), which
makes the embedding invariant to hidden-neuron permutations.
"""
from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import scatter

from nfws.graphs.vocab import EDGE_TYPES, NODE_TYPE, NODE_TYPES

N_NODE_SCALARS = 2   # layer, neuron index
N_EDGE_SCALARS = 5   # value, layer, p0, p1, p2


def mlp(d_in: int, d_hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.ReLU(), nn.Linear(d_hidden, d_out))


def squash(v: torch.Tensor) -> torch.Tensor:
    """sign(v) log(1 + |v|): keeps [-1, 1] positions near identity, tames hash entry indices."""
    return torch.sign(v) * torch.log1p(v.abs())


def standardise_groups(value: torch.Tensor, graph: torch.Tensor, layer: torch.Tensor,
                       etype: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(v - mean) / std within each (graph, layer, edge type) group of edges."""
    key = (graph * (int(layer.max()) + 1) + layer) * len(EDGE_TYPES) + etype
    _, group = torch.unique(key, return_inverse=True)
    mean = scatter(value, group, dim=0, reduce="mean")
    var = scatter((value - mean[group]) ** 2, group, dim=0, reduce="mean")
    return (value - mean[group]) / torch.sqrt(var[group] + eps)


class SinEncoder(nn.Module):
    """Pre-encoder: sin(Linear(scalars)) joined with a type embedding, mixed by a Linear."""

    def __init__(self, n_scalars: int, n_types: int, hidden: int):
        super().__init__()
        self.scalars = nn.Linear(n_scalars, hidden)
        self.types = nn.Embedding(n_types, hidden)
        self.mix = nn.Linear(2 * hidden, hidden)

    def forward(self, scalars: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        return self.mix(torch.cat([torch.sin(self.scalars(scalars)), self.types(types)], -1))


class GMNLayer(MessagePassing):
    """LayerNorm -> edge model e' = e + MLP[x_src, x_dst, e] -> node model
    x' = x + MLP[x, mean_{j->i} MLP[x_j, e'_ji]].

    Edges outnumber nodes by 10-20x in NeRF graphs, so two exact rewrites keep the per-edge
    work small: the first Linear of an MLP on a concatenation is a sum of Linears on its
    parts, and the node parts are projected once per node before being gathered to edges;
    the last Linear of the message MLP commutes with the mean, so it runs per node after
    aggregation (nodes without in-edges receive 0, PyG's mean over nothing).
    """

    def __init__(self, hidden: int):
        super().__init__(aggr="mean", flow="source_to_target")
        self.node_norm = nn.LayerNorm(hidden)
        self.edge_norm = nn.LayerNorm(hidden)
        # edge model MLP[x_src, x_dst, e]: first Linear split by input part
        self.edge_src = nn.Linear(hidden, hidden, bias=False)
        self.edge_dst = nn.Linear(hidden, hidden, bias=False)
        self.edge_self = nn.Linear(hidden, hidden)
        self.edge_out = nn.Linear(hidden, hidden)
        # message MLP[x_j, e_ji]
        self.msg_src = nn.Linear(hidden, hidden, bias=False)
        self.msg_edge = nn.Linear(hidden, hidden)
        self.msg_out = nn.Linear(hidden, hidden)
        self.node_model = mlp(2 * hidden, hidden, hidden)

    def forward(self, x, edge_index, e, has_in_edges):
        xn, en = self.node_norm(x), self.edge_norm(e)
        src, dst = edge_index
        e = e + self.edge_out(torch.relu(self.edge_src(xn)[src] + self.edge_dst(xn)[dst]
                                         + self.edge_self(en)))
        hidden_mean = self.propagate(edge_index, x=self.msg_src(xn), edge_attr=e)
        agg = self.msg_out(hidden_mean) * has_in_edges
        x = x + self.node_model(torch.cat([xn, agg], -1))
        return x, e

    def message(self, x_j, edge_attr):
        return torch.relu(x_j + self.msg_edge(edge_attr))


class GMNEncoder(nn.Module):
    """Parameter graphs -> embeddings [num_graphs, d_embed].

    Scalars are scaled before the sin pre-encoder: layer / ``layer_scale``, neuron index
    through log(1 + i) (so both input 3 vs 4 and hash entry 3000 vs 4000 stay apart; zero
    for hidden neurons, see module doc), edge extras (p0, p1, p2) through :func:`squash`.
    Edge values are standardised within each (graph, layer, edge type) group: raw weights
    are small (hash entries ~1e-2, MLP weights ~1e-1) next to the other scalars, and
    after averaging over tens of thousands of edges their differences between NeRFs
    vanish (embeddings of different NeRFs then agree to 1e-5). The group statistics are
    invariant to neuron permutations, so the embedding stays invariant too.
    Readout: 2-layer edge MLP, mean over each graph's edges, Linear to ``d_embed`` (the
    mean and the final Linear commute, so pooling first is the same map and cheaper).
    """

    def __init__(self, hidden: int = 128, layers: int = 4, d_embed: int = 1024,
                 layer_scale: float = 8.0):
        super().__init__()
        if hidden < 1 or layers < 1 or d_embed < 1:
            raise ValueError(f"GMN: hidden ({hidden}), layers ({layers}) and d_embed "
                             f"({d_embed}) must be >= 1")
        self.d_embed = d_embed
        self.layer_scale = float(layer_scale)
        self.node_encoder = SinEncoder(N_NODE_SCALARS, len(NODE_TYPES), hidden)
        self.edge_encoder = SinEncoder(N_EDGE_SCALARS, len(EDGE_TYPES), hidden)
        self.blocks = nn.ModuleList(GMNLayer(hidden) for _ in range(layers))
        self.readout = nn.Sequential(nn.LayerNorm(hidden), mlp(hidden, hidden, hidden), nn.ReLU())
        self.project = nn.Linear(hidden, d_embed)

    def encode_nodes(self, x: torch.Tensor) -> torch.Tensor:
        dtype = self.project.weight.dtype
        layer, index, ntype = x[:, 0].to(dtype), x[:, 1].to(dtype), x[:, 2]
        index = torch.where(ntype == NODE_TYPE["neuron"], torch.zeros_like(index), index)
        scalars = torch.stack([layer / self.layer_scale, torch.log1p(index)], -1)
        return self.node_encoder(scalars, ntype)

    def encode_edges(self, edge_attr: torch.Tensor, edge_graph: torch.Tensor) -> torch.Tensor:
        edge_attr = edge_attr.to(self.project.weight.dtype)
        value, layer, etype, extras = edge_attr[:, 0], edge_attr[:, 1], edge_attr[:, 2], edge_attr[:, 3:6]
        value = standardise_groups(value, edge_graph, layer.round().long(), etype.round().long())
        scalars = torch.cat([value[:, None], layer[:, None] / self.layer_scale, squash(extras)], -1)
        return self.edge_encoder(scalars, etype.round().long())

    def forward(self, graphs) -> torch.Tensor:
        """graphs: a PyG Batch (x, edge_index, edge_attr, batch, num_graphs)."""
        x = self.encode_nodes(graphs.x)
        edge_graph = graphs.batch[graphs.edge_index[0]]
        e = self.encode_edges(graphs.edge_attr, edge_graph)
        in_degree = torch.bincount(graphs.edge_index[1], minlength=x.shape[0])
        has_in_edges = (in_degree > 0).to(x.dtype)[:, None]
        for block in self.blocks:
            x, e = block(x, graphs.edge_index, e, has_in_edges)
        pooled = scatter(self.readout(e), edge_graph, dim=0, dim_size=graphs.num_graphs, reduce="mean")
        return self.project(pooled)
