"""tiny-cuda-nn flat parameter layout for all 13 architectures, and the optional backend."""
import numpy as np
import pytest
import torch

from nfws.fields.spec import ArchSpec
from nfws.fields.stacks import FieldStack
from nfws.fields.tcnn import TcnnField, from_tcnn, tcnn_available, to_tcnn
from hand_built import one_nerf

HASH_GRID = dict(family="HASH", hash_levels=4, hash_log2_T=12, hash_features=2)
TRI_PLANE = dict(family="TRI", activation="sine", triplane_res=32, triplane_channels=16)
ARCHS = {  # paper Table 7 (docs/recipes.md)
    "MLP": dict(family="MLP"),
    "TRI": TRI_PLANE,
    "HASH": HASH_GRID,
    "MLP-2L": dict(family="MLP", hidden_layers=2),
    "MLP-32H": dict(family="MLP", width=32),
    "TRI-2L": {**TRI_PLANE, "hidden_layers": 2},
    "TRI-32H": {**TRI_PLANE, "width": 32},
    "TRI-16W": {**TRI_PLANE, "triplane_res": 16},
    "TRI-8C": {**TRI_PLANE, "triplane_channels": 8},
    "HASH-2L": {**HASH_GRID, "hidden_layers": 2},
    "HASH-32H": {**HASH_GRID, "width": 32},
    "HASH-3N": {**HASH_GRID, "hash_levels": 3},
    "HASH-11T": {**HASH_GRID, "hash_log2_T": 11},
}
SPECS = {name: ArchSpec.from_dict(name, cfg) for name, cfg in ARCHS.items()}


@pytest.mark.parametrize("name", list(ARCHS))
def test_round_trip_is_exact_and_length_is_n_params(name):
    spec = SPECS[name]
    arrays = one_nerf(spec)
    flat = to_tcnn(spec, arrays)
    assert flat.dtype == np.float32 and flat.shape == (spec.n_params(),)
    back = from_tcnn(spec, flat)
    assert list(back) == list(arrays)
    for key in arrays:
        assert np.array_equal(back[key], arrays[key]), key
    assert np.array_equal(to_tcnn(spec, back), flat)


def test_parameter_counts_by_hand():
    # MLP: 64*144 + 2*64*64 + 16*64; TRI: 304 inputs (288 frequency entries, 16 plane
    # channels) and 3*16*32*32 plane values;
    # HASH: 64*16 + 2*64*64 + 16*64 + 4 levels * 4096 entries * 2; HASH-11T: 2048 entries
    assert SPECS["MLP"].n_params() == 9216 + 8192 + 1024
    assert SPECS["TRI"].n_params() == 64 * 304 + 8192 + 1024 + 49152
    assert SPECS["HASH"].n_params() == 1024 + 8192 + 1024 + 32768
    assert SPECS["HASH-11T"].n_params() == 1024 + 8192 + 1024 + 16384


def test_mlp_layers_are_row_major_in_order():
    spec = SPECS["MLP-32H"]
    arrays = one_nerf(spec)
    flat = to_tcnn(spec, arrays)
    assert flat[1] == arrays["mlp.0"][0, 1] and flat[144] == arrays["mlp.0"][1, 0]
    start = 32 * 144
    assert flat[start] == arrays["mlp.1"][0, 0] and flat[start + 33] == arrays["mlp.1"][1, 1]
    assert flat[-1] == arrays["mlp.3"][15, 31]


def test_hash_grid_follows_network_level_major_at_true_sizes():
    for name, level0 in (("HASH", 4096), ("HASH-11T", 2048)):
        spec = SPECS[name]
        arrays = one_nerf(spec)
        flat = to_tcnn(spec, arrays)
        n_net = 64 * 16 + 2 * 64 * 64 + 16 * 64
        assert flat[n_net - 1] == arrays["mlp.3"][15, 63]
        table = arrays["hash"]
        assert flat[n_net] == table[0, 0, 0] and flat[n_net + 1] == table[0, 0, 1]
        assert flat[n_net + 2] == table[0, 1, 0]                  # entry before feature
        assert flat[n_net + 2 * level0] == table[1, 0, 0]          # then the next level
        assert flat[-1] == table[3, spec.level_sizes()[3] - 1, 1]


def test_triplane_follows_network_as_plane_row_column_channel():
    spec = SPECS["TRI-8C"]
    arrays = one_nerf(spec)
    flat = to_tcnn(spec, arrays)
    n_net = 64 * 304 + 2 * 64 * 64 + 16 * 64
    planes = arrays["triplane"]                                    # [3, C=8, R=32, R]
    assert flat[n_net] == planes[0, 0, 0, 0]
    assert flat[n_net + 1] == planes[0, 1, 0, 0]                   # channel fastest
    assert flat[n_net + 8] == planes[0, 0, 0, 1]                   # then column
    assert flat[n_net + 8 * 32] == planes[0, 0, 1, 0]              # then row
    assert flat[n_net + 8 * 32 * 32] == planes[1, 0, 0, 0]         # then plane


def test_wrong_inputs_are_rejected():
    spec = SPECS["HASH"]
    with pytest.raises(ValueError, match="43008"):
        from_tcnn(spec, np.zeros(100, dtype=np.float32))
    arrays = one_nerf(spec)
    with pytest.raises(ValueError, match="'hash'"):
        to_tcnn(spec, {**arrays, "hash": arrays["hash"][:2]})
    with pytest.raises(ValueError, match="mlp.2"):
        to_tcnn(spec, {k: v for k, v in arrays.items() if k != "mlp.2"})


def test_tcnn_available_is_false_without_cuda():
    assert isinstance(tcnn_available(), bool)
    if not torch.cuda.is_available():
        assert tcnn_available() is False
        with pytest.raises(RuntimeError, match="CUDA"):
            TcnnField(SPECS["MLP"], np.zeros(SPECS["MLP"].n_params(), dtype=np.float32))


@pytest.mark.cuda
@pytest.mark.skipif(not tcnn_available(), reason="needs tinycudann and CUDA")
@pytest.mark.parametrize("name", ["MLP", "TRI", "HASH", "HASH-11T"])
def test_forward_matches_tinycudann(name):
    spec = SPECS[name]
    arrays = one_nerf(spec, seed=3)
    if spec.family != "HASH":
        # frequencies >= 2^10 pi amplify float32 argument rounding and __sinf's error; the
        # comparison is about layout, so those encoder columns get zero weight in both
        cols = [d * 2 * spec.n_freqs + j for d in range(3) for j in range(20, 2 * spec.n_freqs)]
        arrays["mlp.0"][:, cols] = 0.0
    flat = to_tcnn(spec, arrays)
    x = (torch.rand(4096, 3, generator=torch.Generator().manual_seed(4)) * 2 - 1) * 0.69
    stack = FieldStack.from_arrays(spec, {k: v[None] for k, v in arrays.items()}, device="cuda")
    ours = stack.raw(x.cuda()[None])[0, :, :4]
    theirs = TcnnField(spec, flat).raw(x.cuda())
    # tinycudann runs the network in float16
    assert torch.allclose(ours, theirs, atol=2e-2, rtol=2e-2)
