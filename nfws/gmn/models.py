"""Graph Meta-Network encoder (Lim et al., as the GMN-on-NeRFs authors build it).

A NeRF of any architecture becomes a graph (``nfws.graphs``); :class:`GMNEncoder` maps a
batch of such graphs to one embedding per graph. With its defaults it is the authors'
encoder. Hidden-neuron nodes get neuron index -1, so the embedding is invariant to
hidden-neuron permutations. Departures from the authors' design (``value_norm``,
``extras_freq``, ``pool_width``, ``whiten``, ``pool``, ``layer_code``) are options.
Design, departures and the ablation behind each default: docs/gmn.md, "The encoder".
"""
from __future__ import annotations

import torch
from torch import nn
from torch_geometric.utils import scatter

from nfws.graphs.vocab import EDGE_TYPES, NODE_TYPE, NODE_TYPES
from nfws.gmn.groups import (edge_groups, layer_type_groups, role_edge_layers, role_node_layers,
                             standardise_within)
from nfws.gmn.readout import segment_mean_relu_linear

VALUE_NORMS = ("none", "group")
POOLS = ("edges", "groups")
LAYER_CODES = ("index", "role")
#: On the CPU the blocks run on groups of whole graphs of at most this many edges: every
#: per-edge tensor of a group then stays in cache between one operation and the next.
CPU_CHUNK_EDGES = 1 << 17


class SharedTopology:
    """The graphs of a batch grouped by topology, for what depends on topology alone.

    Node features, the static part of edge features (layer, type, extras), value groups and
    pooling weights are the same for every graph of one topology: they are computed on the
    first graph of each topology in the batch and repeated, instead of on every graph (a
    batch of 8 TRI graphs has 622k edges and one topology). Graphs share a topology when
    they have the same ``arch`` name, node and edge counts, and equal node features, edge
    indices and static edge features (checked); any other graph is its own group. Rows of
    a graph must be contiguous (a PyG batch).
    """

    def __init__(self, keys: list, node_ptr: list[int], edge_ptr: list[int]):
        self.keys, self.node_ptr, self.edge_ptr = keys, node_ptr, edge_ptr
        self.first: dict = {}
        for i, key in enumerate(keys):
            self.first.setdefault(key, i)

    @classmethod
    def of(cls, graphs, edge_graph: torch.Tensor) -> "SharedTopology":
        n = graphs.num_graphs
        edge_ptr = [0] + torch.bincount(edge_graph, minlength=n).cumsum(0).tolist()
        node_ptr = [0] + torch.bincount(graphs.batch, minlength=n).cumsum(0).tolist()
        archs = getattr(graphs, "arch", None)
        if archs is None or len(archs) != n:
            return cls(list(range(n)), node_ptr, edge_ptr)
        x, static = graphs.x, graphs.edge_attr[:, 1:]
        local = graphs.edge_index - graphs.edge_index.new_tensor(node_ptr[:-1])[edge_graph]
        nodes = lambda i: slice(node_ptr[i], node_ptr[i + 1])
        edges = lambda i: slice(edge_ptr[i], edge_ptr[i + 1])
        keys, first = [], {}
        for i, arch in enumerate(archs):
            key = (arch, node_ptr[i + 1] - node_ptr[i], edge_ptr[i + 1] - edge_ptr[i])
            j = first.setdefault(key, i)
            same = j == i or (torch.equal(x[nodes(i)], x[nodes(j)])
                              and torch.equal(static[edges(i)], static[edges(j)])
                              and torch.equal(local[:, edges(i)], local[:, edges(j)]))
            keys.append(key if same else i)
        return cls(keys, node_ptr, edge_ptr)

    def _spread(self, fn, ptr: list[int]) -> torch.Tensor:
        parts = {key: fn(slice(ptr[i], ptr[i + 1])) for key, i in self.first.items()}
        return torch.cat([parts[key] for key in self.keys])

    def nodes(self, fn) -> torch.Tensor:
        """``fn(rows)`` of one graph per architecture, repeated over the batch's nodes."""
        return self._spread(fn, self.node_ptr)

    def edges(self, fn) -> torch.Tensor:
        """``fn(rows)`` of one graph per architecture, repeated over the batch's edges."""
        return self._spread(fn, self.edge_ptr)

    def edge_groups(self, fn) -> torch.Tensor:
        """Per-graph group ids ``fn(rows)`` (0..G_i-1 within a graph) made batch-wide."""
        local = {key: fn(slice(self.edge_ptr[i], self.edge_ptr[i + 1])) for key, i in self.first.items()}
        sizes = {key: int(ids.max()) + 1 if len(ids) else 0 for key, ids in local.items()}
        out, offset = [], 0
        for key in self.keys:
            out.append(local[key] + offset)
            offset += sizes[key]
        return torch.cat(out)


class SinFeature(nn.Module):
    """sin(Linear(k -> hidden)) of k scalars; ``std`` re-draws the Linear as Gaussian random
    Fourier features (weights N(0, std^2), phases U(-pi, pi))."""

    def __init__(self, n_scalars: int, hidden: int, std: float | None = None):
        super().__init__()
        self.linear = nn.Linear(n_scalars, hidden)
        if std is not None:
            with torch.no_grad():
                self.linear.weight.normal_(0.0, float(std))
                self.linear.bias.uniform_(-torch.pi, torch.pi)

    def forward(self, scalars: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.linear(scalars))


class PreEncoder(nn.Module):
    """Node (layer, index, type) and edge (value, layer, type, 3 extras) features -> hidden:
    a sin feature per scalar (one for the three extras), an embedding per type, joined by
    one Linear each for nodes and edges."""

    def __init__(self, hidden: int, extras_freq: float | None = None):
        super().__init__()
        self.node_layer, self.node_index = SinFeature(1, hidden), SinFeature(1, hidden)
        self.node_type = nn.Embedding(len(NODE_TYPES), hidden)
        self.node_mix = nn.Linear(3 * hidden, hidden)
        self.edge_value, self.edge_layer = SinFeature(1, hidden), SinFeature(1, hidden)
        self.edge_extras = SinFeature(3, hidden, extras_freq)
        self.edge_type = nn.Embedding(len(EDGE_TYPES), hidden)
        self.edge_mix = nn.Linear(4 * hidden, hidden)

    def nodes(self, layer, index, ntype) -> torch.Tensor:
        return self.node_mix(torch.cat([self.node_layer(layer[:, None]),
                                        self.node_index(index[:, None]), self.node_type(ntype)], -1))

    def edges(self, value, layer, etype, extras) -> torch.Tensor:
        return self.edge_values(value) + self.edge_static(layer, etype, extras)

    def edge_values(self, value) -> torch.Tensor:
        """The value's share of ``edge_mix`` (its first ``hidden`` input columns), no bias."""
        hidden = self.edge_type.embedding_dim
        return torch.nn.functional.linear(self.edge_value(value[:, None]),
                                          self.edge_mix.weight[:, :hidden])

    def edge_static(self, layer, etype, extras) -> torch.Tensor:
        """The topology's share of ``edge_mix`` (layer, type, extras), with its bias."""
        hidden = self.edge_type.embedding_dim
        return torch.nn.functional.linear(
            torch.cat([self.edge_layer(layer[:, None]), self.edge_type(etype),
                       self.edge_extras(extras)], -1),
            self.edge_mix.weight[:, hidden:], self.edge_mix.bias)


class GMNBlock(nn.Module):
    """One residual block: LayerNorm; edge model e1 = ReLU(Linear[x_src, x_dst, e]); node
    model x1 = ReLU(Linear[x, mean_{j->i} ReLU(Linear[x_j, e1_ji])]); x += Linear(SiLU(x1)),
    e += Linear(SiLU(e1)). ``update_nodes=False`` (the last block) keeps the nodes, and
    their states enter the edge model without a LayerNorm.

    Edges outnumber nodes 10-50x, so the first Linear of each model on a concatenation is
    split by part and the node parts are projected once per node, then gathered to edges.
    """

    def __init__(self, hidden: int, update_nodes: bool = True):
        super().__init__()
        self.update_nodes = update_nodes
        self.edge_norm = nn.LayerNorm(hidden)
        self.edge_src = nn.Linear(hidden, hidden, bias=False)
        self.edge_dst = nn.Linear(hidden, hidden, bias=False)
        self.edge_self = nn.Linear(hidden, hidden)
        self.edge_out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden))
        if update_nodes:
            self.node_norm = nn.LayerNorm(hidden)
            self.msg_src = nn.Linear(hidden, hidden, bias=False)
            self.msg_edge = nn.Linear(hidden, hidden)
            self.node_self = nn.Linear(hidden, hidden, bias=False)
            self.node_agg = nn.Linear(hidden, hidden)
            self.node_out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, x, edge_index, e):
        xn = self.node_norm(x) if self.update_nodes else x
        src, dst = edge_index
        e1 = torch.relu(self.edge_src(xn).index_select(0, src) + self.edge_dst(xn).index_select(0, dst)
                        + self.edge_self(self.edge_norm(e)))
        if self.update_nodes:
            message = torch.relu(self.msg_src(xn).index_select(0, src) + self.msg_edge(e1))
            agg = scatter(message, dst, dim=0, dim_size=x.shape[0], reduce="mean")
            x = x + self.node_out(torch.relu(self.node_self(xn) + self.node_agg(agg)))
        return x, e + self.edge_out(e1)


class RunningWhitening(nn.Module):
    """z = (p - mean) (cov + floor)^(-1/2): ZCA whitening with running dataset statistics.

    In training mode each batch updates the running mean and the running average of
    within-batch covariances (cumulative for the first ``1 / momentum`` batches, then
    exponential) and is centred on its own mean, as BatchNorm does: while the encoder
    moves, the running mean lags behind it, and the whitening would magnify that lag along
    the directions of smallest variance until it drowned every difference between NeRFs
    (on the default NeRFs the rendering loss of L_R on MLP then rose from 0.031 to 0.126
    and on HASH it diverged to NaN; centred on the batch it fell, 0.014 to 0.011 and 0.012
    to 0.009). Statistics are buffers without gradient. Eval mode applies the stored
    statistics, so an embedding never depends on its batch.

    ``floor`` = ``eps`` x the mean eigenvalue caps the magnification of directions with
    little training variance at ``eps ** -0.5`` times that of an average one. The running
    covariance averages the last few batches of 8, so with 128 pooled directions many are
    barely spanned; at eps 1e-6 the test embeddings of an L_R encoder trained on HASH alone
    drowned in such directions (classifier accuracy 33.3 %, 56.4 % at 1e-3). Inputs far
    off the training distribution (an unseen architecture's mean) are still magnified
    along them.
    """

    def __init__(self, dim: int, momentum: float = 0.1, eps: float = 1e-3):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("cov", torch.eye(dim))
        self.register_buffer("batches", torch.zeros((), dtype=torch.long))

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        centre = p.mean(0) if self.training else self.mean
        if self.training:
            with torch.no_grad():
                rate = max(1.0 / float(self.batches + 1), self.momentum)
                d = p - centre
                self.mean.lerp_(centre, rate)
                self.cov.lerp_(d.T @ d / p.shape[0], rate)
                self.batches += 1
        cov = self.cov.double()
        evals, evecs = torch.linalg.eigh(cov)
        floor = self.eps * evals.clamp_min(0).mean()
        w = (evecs * (evals.clamp_min(0) + floor).rsqrt()) @ evecs.T
        return (p - centre) @ w.to(p.dtype)


class GMNEncoder(nn.Module):
    """Parameter graphs -> embeddings [num_graphs, d_embed] (see the module doc).

    ``layers`` blocks: the first ``layers - 1`` pass messages between nodes, the last
    updates edges only, so the readout sees node states after ``layers - 1`` rounds of
    aggregation.
    """

    def __init__(self, hidden: int = 128, layers: int = 4, d_embed: int = 1024,
                 value_norm: str = "none", extras_freq: float | None = None,
                 pool_width: int | None = None, whiten: bool = False, pool: str = "edges",
                 layer_code: str = "index"):
        super().__init__()
        if min(hidden, layers, d_embed) < 1 or (pool_width is not None and pool_width < 1):
            raise ValueError(f"GMN: hidden ({hidden}), layers ({layers}), d_embed ({d_embed}) "
                             f"and pool_width ({pool_width}) must be >= 1")
        if value_norm not in VALUE_NORMS:
            raise ValueError(f"GMN: value_norm must be one of {VALUE_NORMS}, got {value_norm!r}")
        if pool not in POOLS:
            raise ValueError(f"GMN: pool must be one of {POOLS}, got {pool!r}")
        if layer_code not in LAYER_CODES:
            raise ValueError(f"GMN: layer_code must be one of {LAYER_CODES}, got {layer_code!r}")
        if extras_freq is not None and extras_freq <= 0:
            raise ValueError(f"GMN: extras_freq must be > 0, got {extras_freq}")
        self.d_embed, self.value_norm, self.pool_mode = d_embed, value_norm, pool
        self.layer_code = layer_code
        self.cpu_chunk_edges: int | None = CPU_CHUNK_EDGES   # None: the whole batch at once
        self.pre = PreEncoder(hidden, extras_freq)
        self.blocks = nn.ModuleList(GMNBlock(hidden, update_nodes=i < layers - 1)
                                    for i in range(layers))
        self.final = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden))
        pooled = d_embed if pool_width is None else pool_width
        self.pool = nn.Linear(hidden, pooled)      # + ReLU and the mean over each graph's edges
        self.whiten = RunningWhitening(pooled) if whiten else None
        self.project = nn.Linear(pooled, d_embed) if pool_width is not None else None

    def encode_nodes(self, x: torch.Tensor) -> torch.Tensor:
        dtype = self.pool.weight.dtype
        layer, index, ntype = x[:, 0], x[:, 1].to(dtype), x[:, 2]
        if self.layer_code == "role":
            layer = role_node_layers(layer, ntype)
        layer = layer.to(dtype)
        index = torch.where(ntype == NODE_TYPE["neuron"], torch.full_like(index, -1.0), index)
        return self.pre.nodes(layer, index, ntype)

    def encode_edges(self, edge_attr: torch.Tensor, shared: SharedTopology) -> torch.Tensor:
        edge_attr = edge_attr.to(self.pool.weight.dtype)
        value = edge_attr[:, 0]
        layer, etype = edge_attr[:, 1].round().long(), edge_attr[:, 2].round().long()
        if self.value_norm == "group":
            zeros = lambda rows: torch.zeros_like(layer[rows])
            value = standardise_within(value, shared.edge_groups(
                lambda rows: layer_type_groups(zeros(rows), layer[rows], etype[rows])))
        code = (lambda rows: role_edge_layers(layer[rows], etype[rows]).to(value.dtype)
                if self.layer_code == "role" else edge_attr[rows, 1])
        static = shared.edges(lambda rows: self.pre.edge_static(
            code(rows), etype[rows], edge_attr[rows, 3:6]))
        return self.pre.edge_values(value) + static

    def pool_graphs(self, x, e, edge_index, edge_graph, n_graphs: int, weight) -> torch.Tensor:
        """The blocks and the pooled readout of whole graphs: pooled features [n_graphs, P]."""
        for block in self.blocks:
            x, e = block(x, edge_index, e)
        return segment_mean_relu_linear(self.final(e), self.pool.weight, self.pool.bias,
                                        edge_graph, n_graphs, weight)

    def forward(self, graphs) -> torch.Tensor:
        """graphs: a PyG Batch (x, edge_index, edge_attr, batch, num_graphs; ``arch``, when
        present, names each graph's architecture: graphs of one share their topology)."""
        check_types(graphs)
        edge_graph = graphs.batch[graphs.edge_index[0]]
        shared = SharedTopology.of(graphs, edge_graph)
        x = shared.nodes(lambda rows: self.encode_nodes(graphs.x[rows]))
        e = self.encode_edges(graphs.edge_attr, shared)
        weight = None
        if self.pool_mode == "groups":
            attr = graphs.edge_attr
            weight = shared.edges(lambda rows: edge_groups(
                torch.zeros_like(edge_graph[rows]), attr[rows, 1].round().long(),
                attr[rows, 2].round().long()))
        chunks = graph_chunks(shared.edge_ptr, self.cpu_chunk_edges if e.device.type == "cpu" else None)
        node_sizes = [shared.node_ptr[b] - shared.node_ptr[a] for a, b in chunks]
        edge_sizes = [shared.edge_ptr[b] - shared.edge_ptr[a] for a, b in chunks]
        pooled = torch.cat([
            self.pool_graphs(xc, ec, index - shared.node_ptr[a], graph - a, b - a, wc)
            for (a, b), xc, ec, index, graph, wc in zip(
                chunks, x.split(node_sizes), e.split(edge_sizes),
                graphs.edge_index.split(edge_sizes, dim=1), edge_graph.split(edge_sizes),
                [None] * len(chunks) if weight is None else weight.split(edge_sizes))])
        if self.whiten is not None:
            pooled = self.whiten(pooled)
        return pooled if self.project is None else self.project(pooled)


def graph_chunks(edge_ptr: list[int], max_edges: int | None) -> list[tuple[int, int]]:
    """Consecutive graph ranges [a, b) of at most ``max_edges`` edges (a larger graph alone);
    one range for all when ``max_edges`` is None."""
    n = len(edge_ptr) - 1
    if max_edges is None:
        return [(0, n)]
    chunks, a = [], 0
    for b in range(1, n + 1):
        if b - a > 1 and edge_ptr[b] - edge_ptr[a] > max_edges:
            chunks.append((a, b - 1))
            a = b - 1
    return chunks + [(a, n)] if n else [(0, 0)]


def check_types(graphs) -> None:
    """Refuse node or edge types outside the vocabulary, naming the graphs' architectures."""
    bad_nodes = (graphs.x[:, 2] < 0) | (graphs.x[:, 2] >= len(NODE_TYPES))
    etype = graphs.edge_attr[:, 2].round()
    bad_edges = (etype < 0) | (etype >= len(EDGE_TYPES))
    if bool(bad_nodes.any()) or bool(bad_edges.any()):
        archs = sorted(set(getattr(graphs, "arch", None) or ["(unnamed)"]))
        raise ValueError(f"GMN: graphs of architecture(s) {archs} have node or edge types the "
                         f"encoder has no embedding for (node types 0..{len(NODE_TYPES) - 1}, "
                         f"edge types 0..{len(EDGE_TYPES) - 1})")
