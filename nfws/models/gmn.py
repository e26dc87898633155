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

Three documented departures from the SPEC's description, all measured on the default data:

- Edge extras (tri-plane position, hash level and relative entry index) enter the sin
  pre-encoder unsquashed and its Linear is initialised as Gaussian random Fourier features
  (std ``pos_freq`` on the extras): with the default init the pre-encoder sees positions
  almost linearly, so a pooled edge feature could only tell the mean gradient of a
  tri-plane or hash table, not where its mass is.
- The edge readout's second layer may widen to ``pool_width`` before the ReLU and the mean
  (the paper pools its hidden width, 128, and maps to 1024 after). A mean keeps only as
  many numbers as it averages: the default config's 16-wide GMN pools 128, because with
  16 its contrastive training stayed near chance in cross-architecture retrieval on the
  default NeRFs and with 128 it did not (numbers in the README).
- The pooled readout is whitened with running dataset statistics (:class:`RunningWhitening`)
  before the final Linear. A mean over tens of thousands of edges differs between NeRFs of
  one architecture by ~1e-3 of the distance between architectures (an untrained encoder on
  the default NeRFs: within-architecture rms 4e-4 ... 2e-3 against 0.4 ... 1 between
  architecture means); no learning rate amplifies that in a few hundred steps, and the
  decoder, classifier and retrieval saw constant embeddings. Whitening scales every
  direction of the pooled feature to unit variance, so the few directions that separate
  architectures no longer drown the many that separate objects.
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


def standardise_groups(value: torch.Tensor, graph: torch.Tensor, layer: torch.Tensor,
                       etype: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(v - mean) / std within each (graph, layer, edge type) group of edges."""
    key = (graph * (int(layer.max()) + 1) + layer) * len(EDGE_TYPES) + etype
    _, group = torch.unique(key, return_inverse=True)
    mean = scatter(value, group, dim=0, reduce="mean")
    var = scatter((value - mean[group]) ** 2, group, dim=0, reduce="mean")
    return (value - mean[group]) / torch.sqrt(var[group] + eps)


class SinEncoder(nn.Module):
    """Pre-encoder: sin(Linear(scalars)) joined with a type embedding, mixed by a Linear.

    ``freqs`` (one std per scalar) turns the sin Linear into Gaussian random Fourier
    features: weights N(0, freqs[j]^2) on scalar j, phases U(-pi, pi); None keeps
    PyTorch's default Linear init.
    """

    def __init__(self, n_scalars: int, n_types: int, hidden: int, freqs=None):
        super().__init__()
        self.scalars = nn.Linear(n_scalars, hidden)
        if freqs is not None:
            if len(freqs) != n_scalars:
                raise ValueError(f"SinEncoder: {len(freqs)} frequency scales for {n_scalars} scalars")
            with torch.no_grad():
                self.scalars.weight.normal_().mul_(torch.tensor(freqs, dtype=torch.float32))
                self.scalars.bias.uniform_(-torch.pi, torch.pi)
        self.types = nn.Embedding(n_types, hidden)
        self.mix = nn.Linear(2 * hidden, hidden)

    def forward(self, scalars: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        return self.mix(torch.cat([torch.sin(self.scalars(scalars)), self.types(types)], -1))


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


class _SegmentMeanReLULinear(torch.autograd.Function):
    """``out[g] = mean over edges i of segment g of relu(h_i W^T + b)``, chunk by chunk.

    The pooled width P is several times the hidden width, so the [E, P] activation of all
    edges of a batch (hundreds of MB) would be written, read back for the mean and again
    for the backward pass. Here only a chunk of rows exists at a time and the backward
    pass recomputes it: the matmuls are cheap next to that memory traffic (about 2.5x
    faster for 320k edges, hidden 16, P 128, one thread).
    """

    @staticmethod
    def forward(ctx, h, weight, bias, counts, chunk):
        out = h.new_zeros(len(counts), weight.shape[0])
        for g, start, stop in _chunks(counts, chunk):
            out[g] += torch.addmm(bias, h[start:stop], weight.t()).relu_().sum(0)
        ctx.save_for_backward(h, weight, bias)
        ctx.counts, ctx.chunk = counts, chunk
        return out / counts.clamp_min(1).to(out.dtype)[:, None]

    @staticmethod
    def backward(ctx, grad):
        h, weight, bias = ctx.saved_tensors
        grad = grad / ctx.counts.clamp_min(1).to(grad.dtype)[:, None]
        grad_h, grad_w, grad_b = torch.empty_like(h), torch.zeros_like(weight), torch.zeros_like(bias)
        for g, start, stop in _chunks(ctx.counts, ctx.chunk):
            rows = h[start:stop]
            active = torch.addmm(bias, rows, weight.t()) > 0
            grad_z = active * grad[g]
            grad_w.addmm_(grad_z.t(), rows)
            grad_b += grad_z.sum(0)
            torch.mm(grad_z, weight, out=grad_h[start:stop])
        return grad_h, grad_w, grad_b, None, None


def _chunks(counts: torch.Tensor, chunk: int):
    """(segment, start, stop) row ranges of at most ``chunk`` rows, segment by segment."""
    start = 0
    for g, n in enumerate(counts.tolist()):
        for s in range(start, start + n, chunk):
            yield g, s, min(s + chunk, start + n)
        start += n


def segment_mean_relu_linear(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                             segment: torch.Tensor, n_segments: int,
                             chunk: int | None = None) -> torch.Tensor:
    """Mean of ``relu(h W^T + b)`` over each segment: rows of ``h [E, H]`` are grouped by
    ``segment [E]`` (non-decreasing, as the edges of a PyG batch). Returns [n_segments, P];
    an empty segment gives zeros. ``chunk`` rows at a time (default: 2,048 on the CPU, where
    they stay in cache; 65,536 on a GPU, where fewer launches matter more)."""
    if chunk is None:
        chunk = 2048 if h.device.type == "cpu" else 1 << 16
    if len(segment) and bool((segment[1:] < segment[:-1]).any()):
        raise ValueError("segment_mean_relu_linear: segment ids must be non-decreasing "
                         "(rows grouped by graph, as in a PyG batch)")
    counts = torch.bincount(segment, minlength=n_segments)
    return _SegmentMeanReLULinear.apply(h, weight, bias, counts, chunk)


class GMNEncoder(nn.Module):
    """Parameter graphs -> embeddings [num_graphs, d_embed].

    Scalars are scaled before the sin pre-encoder: layer / ``layer_scale``, neuron index
    through log(1 + i) (so both input 3 vs 4 and hash entry 3000 vs 4000 stay apart; zero
    for hidden neurons, see module doc); edge extras (p0, p1, p2) enter as they are
    (positions in [-1, 1], hash level, entry / T in [0, 1)) through random Fourier features
    of std ``pos_freq`` (the edge value and layer get std 1).
    Edge values are standardised within each (graph, layer, edge type) group: raw weights
    are small (hash entries ~1e-2, MLP weights ~1e-1) next to the other scalars, and
    after averaging over tens of thousands of edges their differences between NeRFs
    vanish (embeddings of different NeRFs then agree to 1e-5). The group statistics are
    invariant to neuron permutations, so the embedding stays invariant too.
    Readout: 2-layer edge MLP whose second layer widens to ``pool_width`` (default
    ``hidden``), its ReLU averaged over each graph's edges (:func:`segment_mean_relu_linear`),
    running whitening (module doc), Linear to ``d_embed`` (the mean commutes with the
    affine maps after it, so pooling first is cheaper).
    """

    def __init__(self, hidden: int = 128, layers: int = 4, d_embed: int = 1024,
                 layer_scale: float = 8.0, pos_freq: float = 10.0, pool_width: int | None = None):
        super().__init__()
        pool_width = hidden if pool_width is None else pool_width
        if min(hidden, layers, d_embed, pool_width) < 1:
            raise ValueError(f"GMN: hidden ({hidden}), layers ({layers}), d_embed ({d_embed}) "
                             f"and pool_width ({pool_width}) must be >= 1")
        if pos_freq <= 0:
            raise ValueError(f"GMN: pos_freq must be > 0, got {pos_freq}")
        self.d_embed = d_embed
        self.layer_scale = float(layer_scale)
        self.node_encoder = SinEncoder(N_NODE_SCALARS, len(NODE_TYPES), hidden)
        self.edge_encoder = SinEncoder(N_EDGE_SCALARS, len(EDGE_TYPES), hidden,
                                       [1.0, 1.0] + [float(pos_freq)] * 3)
        self.blocks = nn.ModuleList(GMNLayer(hidden) for _ in range(layers))
        self.readout = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.ReLU())
        self.pool = nn.Linear(hidden, pool_width)     # + ReLU and the mean over each graph's edges
        self.whiten = RunningWhitening(pool_width)
        self.project = nn.Linear(pool_width, d_embed)

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
        scalars = torch.cat([value[:, None], layer[:, None] / self.layer_scale, extras], -1)
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
        pooled = segment_mean_relu_linear(self.readout(e), self.pool.weight, self.pool.bias,
                                          edge_graph, graphs.num_graphs)
        return self.project(self.whiten(pooled))
