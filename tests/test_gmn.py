"""GMN encoder: invariance to hidden-neuron permutations and to graph relabelling."""
import torch
from torch_geometric.data import Batch, Data

from nfws.graphs.vocab import EDGE_TYPE, NODE_TYPE
from nfws.models.gmn import GMNEncoder


def mlp_graph(weights, biases, object_id="obj", arch="toy"):
    """Parameter graph of an MLP, built by hand from the SPEC's rules.

    One node per neuron (input / neuron / output), one bias node per non-input layer;
    weight edges i -> o with (W[o, i], layer, weight, 0, 0, 0), bias edges from the layer's
    bias node with (b[o], layer, bias, 0, 0, 0).
    """
    sizes = [weights[0].shape[1]] + [w.shape[0] for w in weights]
    n_layers = len(sizes) - 1
    nodes, offsets = [], []
    for layer, n in enumerate(sizes):
        kind = "input" if layer == 0 else "output" if layer == n_layers else "neuron"
        offsets.append(len(nodes))
        nodes += [(layer, i, NODE_TYPE[kind]) for i in range(n)]
    bias_node = {}
    for layer in range(1, n_layers + 1):
        bias_node[layer] = len(nodes)
        nodes.append((layer, 0, NODE_TYPE["bias"]))
    src, dst, attr = [], [], []
    for layer, (w, b) in enumerate(zip(weights, biases)):
        for o in range(w.shape[0]):
            for i in range(w.shape[1]):
                src.append(offsets[layer] + i)
                dst.append(offsets[layer + 1] + o)
                attr.append((float(w[o, i]), layer, EDGE_TYPE["weight"], 0.0, 0.0, 0.0))
            src.append(bias_node[layer + 1])
            dst.append(offsets[layer + 1] + o)
            attr.append((float(b[o]), layer, EDGE_TYPE["bias"], 0.0, 0.0, 0.0))
    return Data(x=torch.tensor(nodes, dtype=torch.long), edge_index=torch.tensor([src, dst]),
                edge_attr=torch.tensor(attr, dtype=torch.float32), object_id=object_id, arch=arch)


def random_mlp(gen, sizes):
    ws = [torch.randn(sizes[i + 1], sizes[i], generator=gen) for i in range(len(sizes) - 1)]
    bs = [torch.randn(sizes[i + 1], generator=gen) for i in range(len(sizes) - 1)]
    return ws, bs


def encoder():
    torch.manual_seed(0)
    return GMNEncoder(hidden=16, layers=3, d_embed=8).double().eval()


def embed_one(enc, graph):
    g = graph.clone()
    g.edge_attr = g.edge_attr.double()
    return enc(Batch.from_data_list([g]))[0]


def test_hidden_neuron_permutation_leaves_embedding_unchanged():
    gen = torch.Generator().manual_seed(1)
    (w0, w1, w2), (b0, b1, b2) = random_mlp(gen, [3, 5, 4, 2])
    p1, p2 = torch.randperm(5, generator=gen), torch.randperm(4, generator=gen)
    # the same function with permuted hidden neurons
    permuted = ([w0[p1], w1[p2][:, p1], w2[:, p2]], [b0[p1], b1[p2], b2])
    x = torch.randn(7, 3, generator=gen)
    f = lambda ws, bs: torch.relu(torch.relu(x @ ws[0].T + bs[0]) @ ws[1].T + bs[1]) @ ws[2].T + bs[2]
    assert torch.allclose(f([w0, w1, w2], [b0, b1, b2]), f(*permuted), atol=1e-5)
    enc = encoder()
    e_orig = embed_one(enc, mlp_graph([w0, w1, w2], [b0, b1, b2]))
    e_perm = embed_one(enc, mlp_graph(*permuted))
    assert torch.allclose(e_orig, e_perm, atol=1e-5)
    # permuting an input (not a symmetry of the function) must change the embedding
    q = torch.tensor([1, 0, 2])
    e_input = embed_one(enc, mlp_graph([w0[:, q], w1, w2], [b0, b1, b2]))
    assert (e_orig - e_input).abs().max() > 1e-7  # float64 noise is ~1e-16


def test_node_relabelling_and_edge_order_leave_embedding_unchanged():
    gen = torch.Generator().manual_seed(2)
    g = mlp_graph(*random_mlp(gen, [4, 6, 3]))
    perm = torch.randperm(g.num_nodes, generator=gen)          # new position of each old node
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(len(perm))
    edge_perm = torch.randperm(g.edge_index.shape[1], generator=gen)
    h = Data(x=g.x[inverse], edge_index=perm[g.edge_index][:, edge_perm], edge_attr=g.edge_attr[edge_perm])
    enc = encoder()
    assert torch.allclose(embed_one(enc, g), embed_one(enc, h), atol=1e-5)


def test_batched_embeddings_match_single_graphs():
    gen = torch.Generator().manual_seed(3)
    graphs = [mlp_graph(*random_mlp(gen, s)) for s in ([3, 5, 2], [4, 4, 4, 2], [2, 3, 1])]
    for g in graphs:
        g.edge_attr = g.edge_attr.double()
    enc = encoder()
    batched = enc(Batch.from_data_list(graphs))
    assert batched.shape == (3, 8)
    for i, g in enumerate(graphs):
        assert torch.allclose(batched[i], enc(Batch.from_data_list([g]))[0], atol=1e-10)
    assert (batched[0] - batched[1]).abs().max() > 1e-4


def test_values_are_standardised_within_graph_layer_and_type_groups():
    from nfws.models.gmn import standardise_groups

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
