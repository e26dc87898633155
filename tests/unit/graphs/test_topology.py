"""Parameter graphs of all 13 architectures, checked against hand-derived counts and
hand-placed marker weights."""
import numpy as np
import pytest
import yaml

from nfws.fields.spec import ArchSpec
from nfws.graphs.topology import topology, values_from_weights, weights_from_values
from nfws.graphs.vocab import EDGE_TYPE, NODE_TYPE
from workflow_helpers import REPO


def _tri(name, **kw):
    return ArchSpec(name, "TRI", activation="sine", **{"triplane_res": 32, "triplane_channels": 16, **kw})


def _hash(name, **kw):
    return ArchSpec(name, "HASH", **{"hash_levels": 4, "hash_log2_T": 12, "hash_features": 2, **kw})


# The architecture table of docs/recipes.md (paper Table 7).
ARCHS = {
    "MLP": ArchSpec("MLP", "MLP"),
    "TRI": _tri("TRI"),
    "HASH": _hash("HASH"),
    "MLP-2L": ArchSpec("MLP-2L", "MLP", hidden_layers=2),
    "MLP-32H": ArchSpec("MLP-32H", "MLP", width=32),
    "TRI-2L": _tri("TRI-2L", hidden_layers=2),
    "TRI-32H": _tri("TRI-32H", width=32),
    "TRI-16W": _tri("TRI-16W", triplane_res=16),
    "TRI-8C": _tri("TRI-8C", triplane_channels=8),
    "HASH-2L": _hash("HASH-2L", hidden_layers=2),
    "HASH-32H": _hash("HASH-32H", width=32),
    "HASH-3N": _hash("HASH-3N", hash_levels=3),
    "HASH-11T": _hash("HASH-11T", hash_log2_T=11),
}

# Hand derivation. MLP input = 3·2·24 = 144 frequency entries (already a multiple of 16,
# no padding); TRI input = 3·2·48 = 288 frequency entries + C, padded to 304 (C = 16:
# none; C = 8: 8 bias columns);
# HASH input = L·F (8 or 6) padded to 16. MLP nodes = inputs + H·W + 16 outputs, edges =
# in·W + (H−1)·W² + W·16. Hash levels: resolutions 16, 32, 64, 128 → 16³ = 4096 dense
# entries, the others capped at T; so each level holds min(4096, T) entries.
#   name: (grid nodes, MLP input nodes, bias columns, H, W, grid edges)
HAND = {
    "MLP": (0, 144, 0, 3, 64, 0),
    "MLP-2L": (0, 144, 0, 2, 64, 0),
    "MLP-32H": (0, 144, 0, 3, 32, 0),
    "TRI": (3 * 32 * 32, 304, 0, 3, 64, 3 * 16 * 32 * 32),
    "TRI-2L": (3 * 32 * 32, 304, 0, 2, 64, 3 * 16 * 32 * 32),
    "TRI-32H": (3 * 32 * 32, 304, 0, 3, 32, 3 * 16 * 32 * 32),
    "TRI-16W": (3 * 16 * 16, 304, 0, 3, 64, 3 * 16 * 16 * 16),
    "TRI-8C": (3 * 32 * 32, 304, 8, 3, 64, 3 * 8 * 32 * 32),
    "HASH": (4 * 4096, 16, 8, 3, 64, 4 * 4096 * 2),
    "HASH-2L": (4 * 4096, 16, 8, 2, 64, 4 * 4096 * 2),
    "HASH-32H": (4 * 4096, 16, 8, 3, 32, 4 * 4096 * 2),
    "HASH-3N": (3 * 4096, 16, 10, 3, 64, 3 * 4096 * 2),
    "HASH-11T": (4 * 2048, 16, 8, 3, 64, 4 * 2048 * 2),
}


def _random_weights(spec, n, seed):
    rng = np.random.default_rng(seed)
    arrays = {k: rng.normal(size=(n,) + s).astype(np.float32) for k, s in spec.param_shapes().items()}
    if "hash" in arrays:
        for level, size in enumerate(spec.level_sizes()):
            arrays["hash"][:, level, size:] = 0.0
    return arrays


def _marker_weights(spec, markers):
    """Zero weights of one NeRF with the given {(name, index): value} entries set."""
    arrays = {k: np.zeros((1,) + s, np.float32) for k, s in spec.param_shapes().items()}
    for (name, index), value in markers.items():
        arrays[name][(0,) + index] = value
    return arrays


def _edge_with_value(spec, arrays, value):
    values = values_from_weights(spec, arrays)[0]
    (hit,) = np.nonzero(values == value)
    assert len(hit) == 1
    return hit[0]


@pytest.mark.parametrize("name", list(ARCHS))
def test_node_and_edge_counts_match_hand_derivation(name):
    grid, n_in, n_bias, hidden, width, grid_edges = HAND[name]
    topo = topology(ARCHS[name])
    assert topo.n_nodes == grid + n_in + hidden * width + 16
    assert topo.n_edges == grid_edges + n_in * width + (hidden - 1) * width**2 + width * 16
    types = np.bincount(topo.x[:, 2], minlength=len(NODE_TYPE))
    assert types[NODE_TYPE["bias"]] == n_bias
    assert types[NODE_TYPE["neuron"]] == hidden * width
    assert types[NODE_TYPE["output"]] == 16
    edge_types = np.bincount(topo.edge_attr[:, 1].astype(int), minlength=len(EDGE_TYPE))
    assert edge_types[EDGE_TYPE["bias"]] == n_bias * width
    assert topo.edge_index.min() >= 0 and topo.edge_index.max() < topo.n_nodes


def test_headline_sizes():
    sizes = {n: (topology(ARCHS[n]).n_nodes, topology(ARCHS[n]).n_edges) for n in ("MLP", "TRI", "HASH")}
    # 144+192+16; 3072+304+192+16; 16384+16+192+16 nodes. Edges: 9216+8192+1024;
    # 49152+19456+8192+1024; 32768+1024+8192+1024. MLP and TRI are the reference's counts.
    assert sizes == {"MLP": (352, 18432), "TRI": (3584, 77824), "HASH": (16608, 43008)}


def test_config_architectures_are_the_spec_table():
    """The embedded config.yaml defines the 13 architectures of the table above."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())["nerf"]["architectures"]
    assert {name: ArchSpec.from_dict(name, entry) for name, entry in config.items()} == ARCHS


def test_mlp_edges_connect_the_right_neurons():
    spec = ARCHS["MLP"]
    topo = topology(spec)
    arrays = _marker_weights(spec, {("mlp.0", (4, 50)): 7.0, ("mlp.3", (2, 7)): 9.0})
    e = _edge_with_value(spec, arrays, 7.0)
    assert topo.x[topo.edge_index[0, e]].tolist() == [0, 50, NODE_TYPE["input"]]
    assert topo.x[topo.edge_index[1, e]].tolist() == [1, 0, NODE_TYPE["neuron"]]
    assert topo.edge_attr[e].tolist() == [0, EDGE_TYPE["weight"], 0, 0, 0]
    e = _edge_with_value(spec, arrays, 9.0)
    assert topo.x[topo.edge_index[1, e]].tolist() == [4, 2, NODE_TYPE["output"]]
    assert topo.edge_attr[e, :2].tolist() == [3, EDGE_TYPE["weight"]]


def test_triplane_edge_position_and_channel_node():
    spec = ArchSpec("T", "TRI", activation="sine", n_freqs=1, triplane_res=3, triplane_channels=4,
                    width=16, hidden_layers=1)
    topo = topology(spec)
    # Plane 1 is xz; entry (i=0, j=2) with R = 3 sits at x = lin[2] = 1, z = lin[0] = -1.
    # Frequency entries are columns 0..5 of mlp.0, so channel 2 is column 6 + 2 = 8.
    arrays = _marker_weights(spec, {("triplane", (1, 2, 0, 2)): 7.0, ("mlp.0", (5, 8)): 3.0})
    e = _edge_with_value(spec, arrays, 7.0)
    assert topo.edge_attr[e].tolist() == [0, EDGE_TYPE["triplane"], 1.0, 0.0, -1.0]
    assert topo.x[topo.edge_index[0, e]].tolist() == [0, 1 * 9 + 0 * 3 + 2, NODE_TYPE["plane_position"]]
    assert topo.x[topo.edge_index[1, e]].tolist() == [1, 0, NODE_TYPE["plane_channel"]]
    e_mlp = _edge_with_value(spec, arrays, 3.0)
    assert topo.edge_index[0, e_mlp] == topo.edge_index[1, e]
    # 6 + 4 = 10 inputs padded to 16: six bias nodes.
    assert (topo.x[:, 2] == NODE_TYPE["bias"]).sum() == 6


def test_hash_edge_extras_and_feature_node():
    spec = ARCHS["HASH"]
    topo = topology(spec)
    # hash[2, 5, 1] is feature 1 of level 2: MLP input column 2·2 + 1 = 5.
    arrays = _marker_weights(spec, {("hash", (2, 5, 1)): 7.0, ("mlp.0", (0, 5)): 3.0,
                                    ("mlp.0", (3, 12)): 4.0})
    e = _edge_with_value(spec, arrays, 7.0)
    assert topo.edge_attr[e].tolist() == [0, EDGE_TYPE["hash"], 2.0, np.float32(5 / 4096), 0.0]
    assert topo.x[topo.edge_index[0, e]].tolist() == [0, 5, NODE_TYPE["hash_entry"]]
    assert topo.x[topo.edge_index[1, e]].tolist() == [1, 2, NODE_TYPE["hash_feature"]]
    assert topo.edge_index[0, _edge_with_value(spec, arrays, 3.0)] == topo.edge_index[1, e]
    # Column 12 is tiny-cuda-nn padding (8 features padded to 16): a bias edge into neuron 3.
    e = _edge_with_value(spec, arrays, 4.0)
    assert topo.x[topo.edge_index[0, e]].tolist() == [1, 0, NODE_TYPE["bias"]]
    assert topo.x[topo.edge_index[1, e]].tolist() == [2, 0, NODE_TYPE["neuron"]]
    assert topo.edge_attr[e, :2].tolist() == [1, EDGE_TYPE["bias"]]


def _edge_multiset(spec, arrays):
    topo = topology(spec)
    values = values_from_weights(spec, arrays)[0]
    rows = np.concatenate([topo.x[topo.edge_index[0]], topo.x[topo.edge_index[1]],
                           topo.edge_attr, values[:, None]], axis=1).astype(np.float64)
    return rows[np.lexsort(rows.T[::-1])]


@pytest.mark.parametrize("name", ["MLP", "TRI", "HASH"])
def test_hidden_neuron_permutation_only_permutes_nodes(name):
    spec = ARCHS[name]
    arrays = _random_weights(spec, 1, seed=1)
    rng = np.random.default_rng(2)
    permuted = {k: v.copy() for k, v in arrays.items()}
    for h in range(1, spec.hidden_layers + 1):          # hidden layer h: rows of mlp.{h-1}, cols of mlp.{h}
        perm = rng.permutation(spec.width)
        permuted[f"mlp.{h - 1}"] = permuted[f"mlp.{h - 1}"][:, perm, :]
        permuted[f"mlp.{h}"] = permuted[f"mlp.{h}"][:, :, perm]
    assert np.array_equal(_edge_multiset(spec, arrays), _edge_multiset(spec, permuted))
    # Control: permuting input columns is not a symmetry and must change the graph.
    swapped = {k: v.copy() for k, v in arrays.items()}
    swapped["mlp.0"] = swapped["mlp.0"][:, :, ::-1]
    assert not np.array_equal(_edge_multiset(spec, arrays), _edge_multiset(spec, swapped))


def test_triplane_channel_and_hash_feature_permutations_only_permute_nodes():
    # Both are symmetries of the field: the grid's feature c feeds only column c of mlp.0.
    tri = ARCHS["TRI-8C"]
    arrays = _random_weights(tri, 1, seed=6)
    perm = np.array([3, 0, 7, 1, 6, 2, 5, 4])
    f = tri.freq_dim    # mlp.0 columns: frequencies, then the 8 channels, then bias columns
    permuted = dict(arrays, triplane=arrays["triplane"][:, :, perm],
                    **{"mlp.0": np.concatenate([arrays["mlp.0"][:, :, :f],
                                                arrays["mlp.0"][:, :, f + perm],
                                                arrays["mlp.0"][:, :, f + 8:]], axis=2)})
    assert np.array_equal(_edge_multiset(tri, arrays), _edge_multiset(tri, permuted))
    hsh = ARCHS["HASH-3N"]
    arrays = _random_weights(hsh, 1, seed=7)
    swapped = dict(arrays, hash=arrays["hash"][:, :, :, ::-1],
                   **{"mlp.0": arrays["mlp.0"][:, :, [1, 0, 3, 2, 5, 4] + list(range(6, 16))]})
    assert np.array_equal(_edge_multiset(hsh, arrays), _edge_multiset(hsh, swapped))
    # Control: swapping features across levels is not a symmetry.
    across = dict(arrays, **{"mlp.0": arrays["mlp.0"][:, :, [2, 1, 0] + list(range(3, 16))]})
    assert not np.array_equal(_edge_multiset(hsh, arrays), _edge_multiset(hsh, across))


@pytest.mark.parametrize("name", list(ARCHS))
def test_weights_values_round_trip_is_exact(name):
    spec = ARCHS[name]
    arrays = _random_weights(spec, 2, seed=3)
    values = values_from_weights(spec, arrays)
    assert values.shape == (2, spec.n_params())       # every parameter is exactly one edge
    back = weights_from_values(spec, values)
    assert set(back) == set(arrays)
    for k in arrays:
        assert np.array_equal(back[k], arrays[k])
    single = weights_from_values(spec, values[1])
    assert np.array_equal(single["mlp.0"], arrays["mlp.0"][1])


def test_unused_hash_entries_have_no_edges():
    # Base resolution 2: level 0 has res 2 → 8 entries, level 1 res 4 → 64 entries (< T = 128).
    spec = ArchSpec("H", "HASH", hash_levels=2, hash_log2_T=7, hash_features=2, hash_base_res=2,
                    width=16, hidden_layers=1)
    topo = topology(spec)
    assert (topo.x[:, 2] == NODE_TYPE["hash_entry"]).sum() == 8 + 64
    assert (topo.edge_attr[:, 1] == EDGE_TYPE["hash"]).sum() == (8 + 64) * 2
    arrays = _random_weights(spec, 1, seed=4)
    assert np.array_equal(weights_from_values(spec, values_from_weights(spec, arrays))["hash"],
                          arrays["hash"])


def test_wrong_shape_is_rejected_with_the_source_named():
    spec = ARCHS["MLP-32H"]
    arrays = _random_weights(ARCHS["MLP"], 1, seed=5)
    with pytest.raises(ValueError, match=r"shard_7.*mlp\.0"):
        values_from_weights(spec, arrays, source="shard_7")
    with pytest.raises(ValueError, match="values must be"):
        weights_from_values(spec, np.zeros((1, 5), np.float32))
