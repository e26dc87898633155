"""GMN encoder: invariance to hidden-neuron permutations and to graph relabelling."""
import pytest
import torch
from torch_geometric.data import Batch, Data

from hand_built import mlp_graph, random_mlp
from nfws.gmn.models import GMNEncoder
from nfws.graphs.vocab import EDGE_TYPE


# The authors' design (defaults) and one with every departure switched on.
DESIGNS = {"paper": {}, "departures": {"value_norm": "group", "extras_freq": 10.0,
                                       "pool_width": 24, "whiten": True, "pool": "groups",
                                       "layer_code": "role"}}


@pytest.fixture(params=list(DESIGNS))
def design(request):
    return DESIGNS[request.param]


def encoder(design=DESIGNS["departures"]):
    torch.manual_seed(0)
    return GMNEncoder(hidden=16, layers=3, d_embed=8, **design).double().eval()


def embed_one(enc, graph):
    g = graph.clone()
    g.edge_attr = g.edge_attr.double()
    return enc(Batch.from_data_list([g]))[0]


def test_hidden_neuron_permutation_leaves_embedding_unchanged(design):
    gen = torch.Generator().manual_seed(1)
    (w0, w1, w2), (b0, b1, b2) = random_mlp(gen, [3, 5, 4, 2])
    p1, p2 = torch.randperm(5, generator=gen), torch.randperm(4, generator=gen)
    # the same function with permuted hidden neurons
    permuted = ([w0[p1], w1[p2][:, p1], w2[:, p2]], [b0[p1], b1[p2], b2])
    x = torch.randn(7, 3, generator=gen)
    f = lambda ws, bs: torch.relu(torch.relu(x @ ws[0].T + bs[0]) @ ws[1].T + bs[1]) @ ws[2].T + bs[2]
    assert torch.allclose(f([w0, w1, w2], [b0, b1, b2]), f(*permuted), atol=1e-5)
    enc = encoder(design)
    e_orig = embed_one(enc, mlp_graph([w0, w1, w2], [b0, b1, b2]))
    e_perm = embed_one(enc, mlp_graph(*permuted))
    assert torch.allclose(e_orig, e_perm, atol=1e-5)
    # permuting an input (not a symmetry of the function) must change the embedding
    q = torch.tensor([1, 0, 2])
    e_input = embed_one(enc, mlp_graph([w0[:, q], w1, w2], [b0, b1, b2]))
    assert (e_orig - e_input).abs().max() > 1e-7  # float64 noise is ~1e-16


def test_node_relabelling_and_edge_order_leave_embedding_unchanged(design):
    gen = torch.Generator().manual_seed(2)
    g = mlp_graph(*random_mlp(gen, [4, 6, 3]))
    perm = torch.randperm(g.num_nodes, generator=gen)          # new position of each old node
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(len(perm))
    edge_perm = torch.randperm(g.edge_index.shape[1], generator=gen)
    h = Data(x=g.x[inverse], edge_index=perm[g.edge_index][:, edge_perm], edge_attr=g.edge_attr[edge_perm])
    enc = encoder(design)
    assert torch.allclose(embed_one(enc, g), embed_one(enc, h), atol=1e-5)


def test_batched_embeddings_match_single_graphs():
    gen = torch.Generator().manual_seed(3)
    graphs = [mlp_graph(*random_mlp(gen, s)) for s in ([3, 5, 2], [4, 4, 4, 2], [2, 3, 1])]
    for g in graphs:
        g.edge_attr = g.edge_attr.double()
    enc = encoder()
    with torch.no_grad():                          # non-trivial whitening statistics
        enc.train()(Batch.from_data_list(graphs + graphs[::-1]))
    enc.eval()
    assert not torch.allclose(enc.whiten.cov, torch.eye(24, dtype=torch.float64))
    batched = enc(Batch.from_data_list(graphs))
    assert batched.shape == (3, 8)
    for i, g in enumerate(graphs):
        assert torch.allclose(batched[i], enc(Batch.from_data_list([g]))[0], atol=1e-10)
    assert (batched[0] - batched[1]).abs().max() > 1e-4


def test_graphs_named_alike_share_topology_work_only_when_their_topology_is_equal(design):
    """A batch's per-topology work is done once per topology: the embeddings equal those of
    each graph alone, also for graphs given one ``arch`` name that differ in node order or
    edge types at equal counts (each then its own group)."""
    from nfws.gmn.models import SharedTopology

    gen = torch.Generator().manual_seed(5)
    same = [mlp_graph(*random_mlp(gen, [3, 4, 2]), arch="A") for _ in range(3)]
    other = mlp_graph(*random_mlp(gen, [3, 4, 2]), arch="A")
    other.edge_attr[0, 2] = EDGE_TYPE["bias"]                   # same counts, other static feature
    relabelled = mlp_graph(*random_mlp(gen, [3, 4, 2]), arch="A")
    relabelled.edge_index = relabelled.edge_index.flip(0)       # same counts, other edges
    graphs = [same[0], other, same[1], relabelled, same[2]]
    for g in graphs:
        g.edge_attr = g.edge_attr.double()
    batch = Batch.from_data_list(graphs)
    shared = SharedTopology.of(batch, batch.batch[batch.edge_index[0]])
    assert shared.keys[0] == shared.keys[2] == shared.keys[4]
    assert len(set(map(str, shared.keys))) == 3
    enc = encoder(design)
    batched = enc(batch)
    for i, g in enumerate(graphs):
        assert torch.allclose(batched[i], enc(Batch.from_data_list([g]))[0], atol=1e-10)


def test_graph_chunks_cut_between_graphs_at_the_edge_budget():
    from nfws.gmn.models import graph_chunks

    # graphs of 100, 100, 100, 500 and 20 edges, at most 250 a chunk; 500 goes alone
    ptr = [0, 100, 200, 300, 800, 820]
    assert graph_chunks(ptr, 250) == [(0, 2), (2, 3), (3, 4), (4, 5)]
    assert graph_chunks(ptr, 10_000) == [(0, 5)]
    assert graph_chunks(ptr, None) == [(0, 5)]
    assert graph_chunks([0], 250) == [(0, 0)]


def test_embeddings_and_gradients_do_not_depend_on_how_graphs_are_chunked(design):
    """The blocks run on groups of whole graphs on the CPU; a graph's embedding and the
    parameters' gradients are those of the whole batch at once."""
    from nfws.gmn.models import graph_chunks

    gen = torch.Generator().manual_seed(9)
    graphs = [mlp_graph(*random_mlp(gen, s)) for s in ([3, 5, 2], [4, 4, 4, 2], [2, 3, 1], [3, 6, 2])]
    for g in graphs:
        g.edge_attr = g.edge_attr.double()
    batch = Batch.from_data_list(graphs)
    results = []
    for budget in (None, 40):                      # one chunk; then about one graph a chunk
        enc = encoder(design).train()
        enc.cpu_chunk_edges = budget
        out = enc(batch)
        grads = torch.autograd.grad((out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype)
                                     .reshape(out.shape)).sum(), list(enc.parameters()), allow_unused=True)
        results.append((out.detach(), grads))
    assert len(graph_chunks(
        [0, *torch.bincount(batch.batch[batch.edge_index[0]]).cumsum(0).tolist()], 40)) >= 3
    assert torch.allclose(results[0][0], results[1][0], atol=1e-10)
    for g0, g1 in zip(results[0][1], results[1][1]):
        assert (g0 is None) == (g1 is None)
        if g0 is not None:
            assert torch.allclose(g0, g1, atol=1e-10)


def test_segment_mean_relu_linear_is_the_mean_of_relu_linear_per_segment():
    from nfws.gmn.readout import segment_mean_relu_linear

    gen = torch.Generator().manual_seed(6)
    w = torch.randn(5, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, generator=gen, dtype=torch.float64, requires_grad=True)
    h = torch.randn(11, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    segment = torch.tensor([0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2])      # segment 1 is empty
    # chunk 2 splits both segments into several pieces
    out = segment_mean_relu_linear(h, w, b, segment, 4, chunk=2)
    z = torch.relu(h @ w.T + b)
    expected = torch.stack([z[:5].mean(0), torch.zeros(5, dtype=torch.float64), z[5:].mean(0),
                            torch.zeros(5, dtype=torch.float64)])
    assert torch.allclose(out, expected, atol=1e-12)
    # gradients against finite differences, for the rows and the Linear's parameters
    assert torch.autograd.gradcheck(
        lambda x, w_, b_: segment_mean_relu_linear(x, w_, b_, segment, 4, chunk=2), (h, w, b))
    with pytest.raises(ValueError, match="non-decreasing"):
        segment_mean_relu_linear(h, w, b, segment.flip(0), 4)


def test_values_are_standardised_within_graph_layer_and_type_groups():
    from nfws.gmn.groups import standardise_groups

    value = torch.tensor([1.0, 3.0, 10.0, 20.0, 30.0, 5.0])
    graph = torch.tensor([0, 0, 0, 0, 0, 1])
    layer = torch.tensor([0, 0, 1, 1, 1, 0])
    etype = torch.tensor([0, 0, 0, 0, 0, 0])
    out = standardise_groups(value, graph, layer, etype)
    # group {1, 3}: mean 2, std 1 -> -1, 1; group {10, 20, 30}: mean 20, std sqrt(200/3);
    # a lone edge standardises to 0.
    s = (200 / 3) ** 0.5
    expected = torch.tensor([-1.0, 1.0, -10 / s, 0.0, 10 / s, 0.0])
    assert torch.allclose(out, expected, atol=1e-5)


def test_running_whitening_gives_zero_mean_identity_covariance_on_its_data():
    from nfws.gmn.models import RunningWhitening

    gen = torch.Generator().manual_seed(4)
    # correlated 3-d data with a large common offset and one tiny direction
    mix = torch.tensor([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.5, 0.5, 1e-3]], dtype=torch.float64)
    data = torch.randn(64, 3, generator=gen, dtype=torch.float64) @ mix.T + 100.0
    white = RunningWhitening(3, eps=1e-12).double()
    white.train()
    white(data)                                   # first batch: statistics = this batch's
    white.eval()
    z = white(data)
    centred = data - data.mean(0)
    assert torch.allclose(z.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(z.T @ z / len(z), torch.eye(3, dtype=torch.float64), atol=1e-4)
    # ZCA: the whitening matrix is symmetric, so z . centred^T is symmetric too
    cross = z.T @ centred
    assert torch.allclose(cross, cross.T, atol=1e-6)
    # eval mode leaves the statistics alone: the same input maps to the same output
    assert torch.equal(white(data[:5]), z[:5])


def test_running_whitening_centres_a_training_batch_on_its_own_mean():
    from nfws.gmn.models import RunningWhitening

    white = RunningWhitening(2, eps=0.01).double()
    white.train()
    white(torch.tensor([[0.0, 0.0], [2.0, 2.0], [0.0, 2.0], [2.0, 0.0]], dtype=torch.float64))
    # first batch: running mean (1, 1), covariance I. The second batch has mean (11, 0) and
    # covariance [[1, 1], [1, 1]]; as the second batch of a cumulative average it moves the
    # statistics halfway: mean (6, 0.5), covariance [[1, .5], [.5, 1]] = V diag(1.5, .5) V^T;
    # the floor adds eps x the mean eigenvalue (1) to both eigenvalues
    batch = torch.tensor([[10.0, -1.0], [12.0, 1.0]], dtype=torch.float64)
    z = white(batch)
    v = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64) / 2 ** 0.5
    w = v @ torch.diag(torch.tensor([1.5, 0.5], dtype=torch.float64).add(white.eps).rsqrt()) @ v.T
    # training: centred on the batch's own mean
    assert torch.allclose(z, (batch - torch.tensor([11.0, 0.0], dtype=torch.float64)) @ w, atol=1e-5)
    white.eval()
    assert torch.allclose(white.mean, torch.tensor([6.0, 0.5], dtype=torch.float64))
    # evaluation: centred on the running mean
    assert torch.allclose(white(batch), (batch - torch.tensor([6.0, 0.5], dtype=torch.float64)) @ w,
                          atol=1e-5)


def test_running_whitening_averages_batches_cumulatively_then_exponentially():
    from nfws.gmn.models import RunningWhitening

    white = RunningWhitening(1, momentum=0.25)
    white.train()
    means = []
    for value in (0.0, 4.0, 8.0, 12.0, 16.0):
        white(torch.tensor([[value - 1.0], [value + 1.0]]))
        means.append(white.mean.item())
    # rates 1, 1/2, 1/3, 1/4 (cumulative average), then the floor 0.25
    assert means[:4] == pytest.approx([0.0, 2.0, 4.0, 6.0])
    assert means[4] == pytest.approx(6.0 + 0.25 * (16.0 - 6.0))
    assert white.cov.item() == pytest.approx(1.0)   # every batch has variance 1


def test_sin_feature_fourier_init_draws_weights_at_its_std():
    from nfws.gmn.models import SinFeature

    torch.manual_seed(5)
    feature = SinFeature(3, 4000, std=10.0)
    assert torch.allclose(feature.linear.weight.std(0), torch.full((3,), 10.0), rtol=0.05)
    bias = feature.linear.bias
    assert bias.abs().max() <= torch.pi and bias.std() > 1.5     # U(-pi, pi): std 1.81
    x = torch.randn(5, 3)
    assert torch.allclose(feature(x), torch.sin(x @ feature.linear.weight.T + bias))


def test_the_last_block_updates_edges_only():
    enc = GMNEncoder(hidden=8, layers=4, d_embed=4)
    assert [b.update_nodes for b in enc.blocks] == [True, True, True, False]
    gen = torch.Generator().manual_seed(9)
    g = mlp_graph(*random_mlp(gen, [3, 4, 2]))
    x, e = torch.randn(g.num_nodes, 8), torch.randn(g.num_edges, 8)
    x_out, e_out = enc.blocks[-1](x, g.edge_index, e)
    assert torch.equal(x_out, x) and not torch.allclose(e_out, e)


def test_node_states_after_message_passing_reach_the_embedding():
    """A node feature reaches the edge readout only through a block's edge model; with
    ``layers`` blocks a node's state reaches edges up to ``layers - 1`` hops away.

    In the chain 0 -> 1 -> 2 -> 3 -> 4 only node 0's state is changed. With one block (edges
    only) just edge 0 -> 1 sees it. With three, two rounds of messages carry it to nodes 1
    and 2, so edges 0 -> 1, 1 -> 2 and 2 -> 3 change and edge 3 -> 4 (three hops) does not."""
    from nfws.gmn.models import GMNBlock

    torch.manual_seed(3)
    edge_index = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
    x = torch.randn(5, 8)
    x_changed = x.clone()
    x_changed[0] += torch.randn(8)       # not a constant shift, which LayerNorm removes
    e = torch.randn(4, 8)
    blocks = [GMNBlock(8), GMNBlock(8), GMNBlock(8, update_nodes=False)]

    def run(nodes, n):
        edges = e
        for block in blocks[-n:]:
            nodes, edges = block(nodes, edge_index, edges)
        return edges

    one = (run(x, 1) - run(x_changed, 1)).abs().amax(1)
    three = (run(x, 3) - run(x_changed, 3)).abs().amax(1)
    assert one[0] > 1e-4 and torch.all(one[1:] == 0)
    assert torch.all(three[:3] > 1e-4) and three[3] == 0


def test_edge_groups_weigh_each_type_and_depth_role_equally():
    from nfws.gmn.groups import edge_groups

    W, B, T = EDGE_TYPE["weight"], EDGE_TYPE["bias"], EDGE_TYPE["triplane"]
    # graph 0: 2 triplane edges, weight edges at layers 1 (x3), 2 (x2), 3 (x2), 4 (x1), one
    # bias edge at layer 2; graph 1: weight edges at layers 0 (x2) and 1 (x2)
    graph = torch.tensor([0] * 11 + [1] * 4)
    layer = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3, 3, 4, 2, 0, 0, 1, 1])
    etype = torch.tensor([T, T, W, W, W, W, W, W, W, W, B, W, W, W, W])
    w = edge_groups(graph, layer, etype)
    # graph 0 groups: triplane {2}, weight-first {3}, weight-hidden {2 + 2}, weight-last
    # {1}, bias {1} (its first, hence role first) -> 5 groups, each of weight 1/5
    g0 = [1 / 10] * 2 + [1 / 15] * 3 + [1 / 20] * 4 + [1 / 5] + [1 / 5]
    # graph 1: weight-first {2}, weight-last {2} -> 2 groups
    expected = torch.tensor(g0 + [1 / 4] * 4)
    assert torch.allclose(w, expected)
    assert torch.allclose(torch.zeros(2).index_add_(0, graph, w), torch.ones(2))


def test_weighted_segment_mean_is_the_weighted_sum():
    from nfws.gmn.readout import segment_mean_relu_linear

    gen = torch.Generator().manual_seed(7)
    h = torch.randn(6, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, generator=gen, dtype=torch.float64, requires_grad=True)
    segment = torch.tensor([0, 0, 0, 1, 1, 1])
    weight = torch.tensor([0.5, 0.25, 0.25, 0.1, 0.1, 0.8], dtype=torch.float64)
    out = segment_mean_relu_linear(h, w, b, segment, 2, weight, chunk=2)
    z = torch.relu(h @ w.T + b)
    expected = torch.stack([(weight[:3, None] * z[:3]).sum(0), (weight[3:, None] * z[3:]).sum(0)])
    assert torch.allclose(out, expected, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda x, w_, b_: segment_mean_relu_linear(x, w_, b_, segment, 2, weight, chunk=2), (h, w, b))


def test_unknown_node_or_edge_types_name_the_architecture():
    gen = torch.Generator().manual_seed(8)
    g = mlp_graph(*random_mlp(gen, [2, 3, 1]), arch="MLP-X")
    g.edge_attr[0, 2] = len(EDGE_TYPE)
    with pytest.raises(ValueError, match=r"\['MLP-X'\].*edge types 0..3"):
        encoder()(Batch.from_data_list([g]))
    h = mlp_graph(*random_mlp(gen, [2, 3, 1]), arch="ODD")
    h.x[0, 2] = -1
    with pytest.raises(ValueError, match="ODD"):
        encoder()(Batch.from_data_list([h]))


def _topology_tensors(spec):
    from nfws.graphs.topology import topology

    topo = topology(spec)
    return (torch.tensor(topo.x), torch.tensor(topo.edge_attr[:, 0]).long(),
            torch.tensor(topo.edge_attr[:, 1]).long())


@pytest.mark.parametrize("family, extra", [
    ("MLP", {}), ("TRI", {"activation": "sine", "triplane_res": 4, "triplane_channels": 2}),
    ("HASH", {"hash_levels": 2, "hash_log2_T": 6, "hash_features": 2, "hash_base_res": 2}),
])
def test_depth_roles_give_every_depth_the_same_layer_codes(family, extra):
    from nfws.fields.spec import ArchSpec
    from nfws.gmn.groups import role_edge_layers, role_node_layers
    from nfws.graphs.vocab import NODE_TYPE

    first = 0 if family == "MLP" else 1          # layer of the MLP's inputs (after a grid)
    codes = {}
    for depth in (1, 2, 3):
        x, layer, etype = _topology_tensors(ArchSpec(f"{family}-{depth}", family, hidden_layers=depth,
                                                     width=16, n_freqs=1, **extra))
        nodes, edges = role_node_layers(x[:, 0], x[:, 2]), role_edge_layers(layer, etype)
        neuron, output = x[:, 2] == NODE_TYPE["neuron"], x[:, 2] == NODE_TYPE["output"]
        # by hand: hidden neurons on layer first + 1, outputs on first + 2, the rest unchanged
        assert torch.all(nodes[neuron] == first + 1) and torch.all(nodes[output] == first + 2)
        assert torch.equal(nodes[~(neuron | output)], x[~(neuron | output), 0])
        mlp = (etype == EDGE_TYPE["weight"]) | (etype == EDGE_TYPE["bias"])
        # weight edges: the first MLP layer keeps its index, hidden ones first + 1, the last first + 2
        expected = torch.where(layer == first, first, torch.where(layer == first + depth, first + 2, first + 1))
        assert torch.equal(edges[mlp], expected[mlp]) and torch.equal(edges[~mlp], layer[~mlp])
        codes[depth] = ({tuple(r) for r in torch.stack([nodes, x[:, 1], x[:, 2]], 1).tolist()},
                        {tuple(r) for r in torch.stack([edges, etype], 1).tolist()})
    # a deeper net adds hidden layers of kinds the shallower ones already have (depth 1 has
    # no hidden-to-hidden layer)
    assert codes[2] == codes[3] and codes[1][0] == codes[2][0] and codes[1][1] < codes[2][1]


def test_depth_roles_enter_the_encoder_as_its_layer_numbers():
    """An encoder with depth roles embeds a graph as the same encoder with layer indices
    embeds it once its layer numbers are replaced by the roles, written out by hand."""
    from nfws.graphs.vocab import NODE_TYPE

    gen = torch.Generator().manual_seed(3)
    g = mlp_graph(*random_mlp(gen, [2, 4, 4, 4, 2]))     # layers: inputs 0, hidden 1-3, outputs 4
    coded = g.clone()
    hidden = (g.x[:, 2] == NODE_TYPE["neuron"]) | (g.x[:, 2] == NODE_TYPE["output"])
    coded.x[:, 0] = torch.where(hidden, torch.tensor([0, 1, 1, 1, 2])[g.x[:, 0]], g.x[:, 0])
    coded.edge_attr[:, 1] = torch.tensor([0.0, 1.0, 1.0, 2.0])[g.edge_attr[:, 1].long()]
    role, index = encoder({"layer_code": "role"}), encoder({})
    assert torch.allclose(embed_one(role, g), embed_one(index, coded), atol=1e-12)
    assert not torch.allclose(embed_one(index, g), embed_one(index, coded), atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    ({"value_norm": "layer"}, "value_norm"), ({"pool": "max"}, "pool"),
    ({"layer_code": "depth"}, "layer_code"),
    ({"extras_freq": 0.0}, "extras_freq"), ({"layers": 0}, "layers"),
])
def test_bad_options_are_refused_by_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GMNEncoder(hidden=8, d_embed=4, **kwargs)
