"""Batched field stacks: forward maths from the formulas, batching, invariances, I/O."""
import math

import numpy as np
import pytest
import torch

from nfws.fields.spec import ArchSpec
from nfws.fields.stacks import FieldStack, initial_stack, make_stack, select, trunc_exp

MLP = ArchSpec(name="MLP", family="MLP")
TRI = ArchSpec(name="TRI", family="TRI", activation="sine", triplane_res=32, triplane_channels=16)
HASH = ArchSpec(name="HASH", family="HASH", hash_levels=4, hash_log2_T=12, hash_features=2)
FAMILIES = [MLP, TRI, HASH]


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def points(b, n, seed=1):
    return (torch.rand(b, n, 3, generator=gen(seed)) * 2 - 1) * 0.69


def numpy_freq(x01, n_freqs):
    """Frequency encoding written out entry by entry (d * 2F + 2k + {sin, cos})."""
    out = np.zeros((len(x01), 3 * 2 * n_freqs))
    for d in range(3):
        for k in range(n_freqs):
            out[:, d * 2 * n_freqs + 2 * k] = np.sin(2.0**k * np.pi * x01[:, d])
            out[:, d * 2 * n_freqs + 2 * k + 1] = np.cos(2.0**k * np.pi * x01[:, d])
    return out


def test_padding_columns_act_as_a_bias():
    spec = ArchSpec(name="h", family="HASH", hidden_layers=1, width=16, hash_levels=4,
                    hash_log2_T=12, hash_features=2)
    arrays = {k: v[0] for k, v in make_stack(spec, 1, gen()).state_arrays().items()}
    arrays["hash"] = np.random.default_rng(0).normal(size=arrays["hash"].shape).astype(np.float32)
    arrays["mlp.0"][:, :8] = 0.0          # only the 8 padding columns (inputs 8..15) remain
    stack = FieldStack.from_arrays(spec, {k: v[None] for k, v in arrays.items()})
    raw = stack.raw(points(1, 50))[0].detach().numpy()
    # every point sees inputs (0,...,0, 1,...,1): hidden = relu(sum of padding columns)
    hidden = np.maximum(arrays["mlp.0"][:, 8:].sum(axis=1), 0.0)
    expected = arrays["mlp.1"] @ hidden
    assert np.allclose(raw, expected[None, :], atol=1e-5)
    assert np.ptp(raw, axis=0).max() < 1e-5


def test_mlp_family_matches_hand_written_forward():
    # 2 frequencies -> 12 encoded inputs, padded with four 1.0 to 16
    spec = ArchSpec(name="m", family="MLP", hidden_layers=2, width=16, n_freqs=2)
    stack = make_stack(spec, 1, gen(3))
    w = {k: v[0].astype(np.float64) for k, v in stack.state_arrays().items()}
    x = points(1, 40)
    x01 = (x[0].numpy().astype(np.float64) + 0.7) / 1.4
    enc = np.concatenate([numpy_freq(x01, 2), np.ones((40, 4))], axis=1)
    h = np.maximum(enc @ w["mlp.0"].T, 0)
    h = np.maximum(h @ w["mlp.1"].T, 0)
    expected = h @ w["mlp.2"].T
    assert np.allclose(stack.raw(x)[0].detach().numpy(), expected, atol=1e-4)


def test_tri_family_orders_frequency_before_planes_and_uses_sine():
    # 2 frequencies (12) + 4 channels = 16 inputs, no padding; points on grid vertices
    spec = ArchSpec(name="t", family="TRI", hidden_layers=1, width=16, activation="sine",
                    n_freqs=2, triplane_res=5, triplane_channels=4)
    stack = make_stack(spec, 1, gen(4))
    with torch.no_grad():
        stack.params["triplane"].normal_(generator=gen(5))
    w = {k: v[0].astype(np.float64) for k, v in stack.state_arrays().items()}
    verts = np.array([[1, 2, 3], [0, 4, 2], [4, 4, 0]])          # grid steps of 1/4
    x01 = verts / 4.0
    planes = w["triplane"]                                       # [3, C, R(row), R(col)]
    tri = (planes[0][:, verts[:, 1], verts[:, 0]] + planes[1][:, verts[:, 2], verts[:, 0]]
           + planes[2][:, verts[:, 2], verts[:, 1]]).T
    enc = np.concatenate([numpy_freq(x01, 2), tri], axis=1)
    expected = np.sin(enc @ w["mlp.0"].T) @ w["mlp.1"].T
    x = torch.tensor(x01 * 1.4 - 0.7, dtype=torch.float32)[None]
    assert np.allclose(stack.raw(x)[0].detach().numpy(), expected, atol=1e-4)


@pytest.mark.parametrize("spec", FAMILIES, ids=lambda s: s.name)
def test_output_activations(spec):
    stack = make_stack(spec, 2, gen())
    x = points(2, 30)
    x[:, 0, 0] = 0.75                                           # outside the bbox
    raw = stack.raw(x)
    rgb, sigma = stack(x)
    assert torch.allclose(rgb, torch.sigmoid(raw[..., :3]))
    inside = torch.exp(raw[:, 1:, 3] - 1)
    assert torch.allclose(sigma[:, 1:], inside)
    assert (sigma[:, 0] == 0).all() and (sigma >= 0).all()


def test_trunc_exp_clamps_only_the_gradient():
    x = torch.tensor([1.0, 20.0], requires_grad=True)
    y = trunc_exp(x)
    y.sum().backward()
    assert torch.allclose(y, torch.tensor([math.e, math.exp(20.0)]))
    assert torch.allclose(x.grad, torch.tensor([math.e, math.exp(15.0)]))


@pytest.mark.parametrize("spec", FAMILIES, ids=lambda s: s.name)
def test_batched_stack_equals_separate_fields(spec):
    stack = make_stack(spec, 3, gen(6))
    x = points(3, 64)
    raw = stack.raw(x)
    for b in range(3):
        single = select(stack, b)
        assert single.n == 1
        assert torch.allclose(raw[b], single.raw(x[b:b + 1])[0], atol=1e-5)


def test_select_copies_the_chosen_fields():
    stack = make_stack(HASH, 4, gen())
    sub = select(stack, [2, 0])
    full = stack.state_arrays()
    for name, arr in sub.state_arrays().items():
        assert np.array_equal(arr, full[name][[2, 0]])
    with torch.no_grad():
        sub.params["mlp_0"].zero_()
    assert np.array_equal(stack.state_arrays()["mlp.0"], full["mlp.0"])
    assert select(stack, slice(1, 3)).n == 2
    assert select(stack, torch.tensor([True, False, False, True])).n == 2


@pytest.mark.parametrize("spec", FAMILIES, ids=lambda s: s.name)
def test_hidden_neuron_permutation_leaves_output_unchanged(spec):
    stack = make_stack(spec, 1, gen(7))
    arrays = stack.state_arrays()
    perm = np.random.default_rng(0).permutation(spec.width)
    for i in range(spec.hidden_layers):         # permute hidden layer i everywhere it appears
        arrays[f"mlp.{i}"] = arrays[f"mlp.{i}"][:, perm]
        arrays[f"mlp.{i + 1}"] = arrays[f"mlp.{i + 1}"][:, :, perm]
    permuted = FieldStack.from_arrays(spec, arrays)
    assert not np.array_equal(arrays["mlp.0"], stack.state_arrays()["mlp.0"])
    x = points(1, 100)
    assert torch.allclose(stack.raw(x), permuted.raw(x), atol=1e-5)


@pytest.mark.parametrize("spec", FAMILIES, ids=lambda s: s.name)
def test_state_arrays_round_trip(spec):
    stack = make_stack(spec, 2, gen())
    arrays = stack.state_arrays()
    assert list(arrays) == list(spec.param_shapes())
    for name, shape in spec.param_shapes().items():
        assert arrays[name].shape == (2, *shape) and arrays[name].dtype == np.float32
    again = FieldStack.from_arrays(spec, arrays)
    x = points(2, 16)
    assert torch.equal(stack.raw(x), again.raw(x))


def test_bad_arrays_name_the_parameter():
    arrays = make_stack(MLP, 1, gen()).state_arrays()
    with pytest.raises(ValueError, match="mlp.1"):
        FieldStack.from_arrays(MLP, {**arrays, "mlp.1": arrays["mlp.1"][:, :5]})
    with pytest.raises(ValueError, match="missing"):
        FieldStack.from_arrays(MLP, {k: v for k, v in arrays.items() if k != "mlp.3"})
    with pytest.raises(ValueError, match="number of fields"):
        FieldStack.from_arrays(MLP, {**arrays, "mlp.0": np.repeat(arrays["mlp.0"], 2, axis=0)})
    bad = arrays["mlp.2"].copy()
    bad[0, 3, 5] = np.nan
    with pytest.raises(ValueError, match="'mlp.2' contains 1 non-finite"):
        FieldStack.from_arrays(MLP, {**arrays, "mlp.2": bad})
    with pytest.raises(ValueError, match="points"):
        make_stack(MLP, 2, gen())(torch.zeros(1, 4, 3))


def test_make_stack_is_seeded_and_tcnn_initialised():
    a = make_stack(HASH, 2, gen(11)).state_arrays()
    b = make_stack(HASH, 2, gen(11)).state_arrays()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert np.abs(a["hash"]).max() <= 1e-4 and np.abs(a["hash"]).max() > 0.9e-4
    # Xavier bound sqrt(6 / (16 + 64)) for the first ReLU layer
    assert np.abs(a["mlp.0"]).max() <= math.sqrt(6 / 80) + 1e-7
    # a level smaller than T (16^3 = 4096 < 2^14) keeps its unused tail at zero
    small = make_stack(ArchSpec(name="h", family="HASH", hash_levels=1, hash_log2_T=14,
                                hash_features=2), 1, gen()).state_arrays()["hash"]
    assert np.count_nonzero(small[0, 0, 4096:]) == 0 and np.count_nonzero(small[0, 0, :4096]) > 0
    tri = make_stack(TRI, 1, gen()).state_arrays()
    # Sine: first layer U(+-30 / 304) (fan-in 288 + 16), later layers U(+-sqrt(6 / 64))
    assert 0.9 * 30 / 304 < np.abs(tri["mlp.0"]).max() <= 30 / 304
    assert 0.9 * math.sqrt(6 / 64) < np.abs(tri["mlp.1"]).max() <= math.sqrt(6 / 64)
    assert np.std(tri["triplane"]) == pytest.approx(1e-3, rel=0.05)


@pytest.mark.parametrize("spec", FAMILIES, ids=lambda s: s.name)
def test_bfloat16_autocast_runs_and_stays_close(spec):
    stack = make_stack(spec, 2, gen())
    x = points(2, 32)
    rgb, sigma = stack(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rgb16, sigma16 = stack(x)
        (rgb16.float().sum() + sigma16.sum()).backward()
    assert torch.allclose(rgb16.float(), rgb, atol=0.03)
    assert torch.allclose(sigma16, sigma, rtol=0.1, atol=0.05)
    assert all(p.grad is not None for p in stack.parameters())


def test_mlp_accepts_whole_encoding_or_blocks():
    stack = make_stack(TRI, 2, gen(8))
    x01 = torch.rand(2, 10, 3, generator=gen(9))
    blocks = stack.encode(x01)
    assert [b.shape[-1] for b in blocks] == [288, 16]
    assert torch.allclose(stack.mlp(blocks), stack.mlp(torch.cat(blocks, -1)), atol=1e-5)


def _starts(spec, ids, init, seed=0):
    arrays = initial_stack(spec, ids, init, seed).state_arrays()
    return {oid: {k: v[i] for k, v in arrays.items()} for i, oid in enumerate(ids)}


def _same(a, b):
    return all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("spec", [MLP, TRI, HASH])
def test_initial_stack_does_not_depend_on_shard_or_slot(spec):
    # the same object gets the same start in any shard at any slot; under "shared" every
    # object of the architecture gets one start, under "per_nerf" each its own
    for init in ("shared", "per_nerf"):
        one, two = _starts(spec, ["a", "b", "c"], init), _starts(spec, ["c", "d", "a"], init)
        assert _same(one["a"], two["a"]) and _same(one["c"], two["c"])
        assert _same(one["a"], one["b"]) == (init == "shared")
    other = ArchSpec.from_dict("OTHER", {k: v for k, v in spec.to_dict().items() if k != "name"})
    assert not _same(_starts(spec, ["a"], "shared")["a"], _starts(other, ["a"], "shared")["a"])
    assert not _same(_starts(spec, ["a"], "shared", 0)["a"], _starts(spec, ["a"], "shared", 1)["a"])


def test_initial_stack_rejects_unknown_mode_and_empty_shard():
    with pytest.raises(ValueError, match="nerf.fit.init"):
        initial_stack(MLP, ["a"], "random", 0)
    with pytest.raises(ValueError, match="at least one object"):
        initial_stack(MLP, [], "shared", 0)
