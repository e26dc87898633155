"""LoRA / mLoRA adapters and asymmetric masks, checked against the base field."""
import math

import pytest
import torch

from nfws.mlora.models import (asymmetric_mask, build_representation, lora_on_base,
                              n_frozen_per_row, partition_owners)
from nfws.mlora.modulated import ModulatedField
from hand_built import tiny_lora_fit

ARCH = dict(coord_dim=3, out_dim=1, d_z=6, mapping_layers=2, mapping_width=16,
            n_blocks=2, width=16, enc_width=12, omega0=3.0)
FIT = tiny_lora_fit(rank=3, mask_seed=7, mlp_hidden=9, omega0=4.0)


def _base():
    torch.manual_seed(1)
    model = ModulatedField(ARCH).eval()
    z = torch.randn(6)
    w, b = model.folded(z)
    return model, z, {"weights": w, "biases": b, "enc_weight": model.encoder.proj.weight.detach(),
                      "enc_bias": model.encoder.proj.bias.detach(), "omega0": 3.0, "n_blocks": 2}


def _params_with(rep, fill_a, fill_b, n=2):
    return {e.name: torch.full((n, *e.shape), fill_a if e.role == "A" else fill_b)
            for e in rep.entries}


def test_mlora_with_ba_all_ones_reproduces_base():
    model, z, base = _base()
    rep = build_representation("mlora", FIT, 3, 1, base)
    # rank r = 3 with entries 1/sqrt(3): (BA)_ij = sum_k 1/3 = 1
    params = {e.name: torch.full((2, *e.shape), 1 / math.sqrt(3)) for e in rep.entries}
    p = torch.rand(2, 50, 3) - 0.5
    with torch.no_grad():
        ours = rep.forward(params, p)
        ref = model(p, z.expand(2, -1))
    assert torch.allclose(ours, ref, atol=1e-5)


def test_lora_with_b_zero_reproduces_base():
    model, z, base = _base()
    rep = build_representation("lora", FIT, 3, 1, base)
    params = _params_with(rep, 0.7, 0.0)
    p = torch.rand(2, 50, 3) - 0.5
    with torch.no_grad():
        assert torch.allclose(rep.forward(params, p), model(p, z.expand(2, -1)), atol=1e-5)


@pytest.mark.parametrize("multiplicative", [True, False])
def test_adapted_forward_matches_hand_written_network(multiplicative):
    _, _, base = _base()
    rep = lora_on_base(multiplicative, False, base, 2, 6.0, "uniform", 0.1, 0)
    gen = torch.Generator().manual_seed(0)
    params = {e.name: torch.randn((1, *e.shape), generator=gen) for e in rep.entries}
    x = torch.rand(5, 3) - 0.5

    def w(l):
        ba = params[f"layer{l}.B"][0] @ params[f"layer{l}.A"][0]
        return base["weights"][l] * ba if multiplicative else base["weights"][l] + ba

    b = base["biases"]
    h = torch.sin(3.0 * (x @ base["enc_weight"].T + base["enc_bias"]))
    h = torch.relu(h @ w(0).T + b[0])
    for k in range(2):       # two residual blocks of two layers
        a = torch.relu(h @ w(1 + 2 * k).T + b[1 + 2 * k])
        h = h + torch.relu(a @ w(2 + 2 * k).T + b[2 + 2 * k])
    expect = h @ w(5).T + b[5]
    with torch.no_grad():
        assert torch.allclose(rep.forward(params, x[None])[0], expect, atol=1e-5)
    # every layer holds r pairs, also the 1-row output layer
    assert rep.entries[-1].shape == (1, 2) and rep.entries[-2].shape == (2, 16)


def test_asymmetric_mask_counts_and_determinism():
    m1 = asymmetric_mask(16, 10, 4, torch.Generator().manual_seed(3))
    m2 = asymmetric_mask(16, 10, 4, torch.Generator().manual_seed(3))
    m3 = asymmetric_mask(16, 10, 4, torch.Generator().manual_seed(4))
    assert torch.equal(m1, m2) and not torch.equal(m1, m3)
    assert (m1.sum(1) == 4).all()
    assert n_frozen_per_row(16, 100) == 4 and n_frozen_per_row(94, 2) == 1
    with pytest.raises(ValueError, match="frozen"):
        asymmetric_mask(4, 3, 3, torch.Generator())


def test_asym_representations_share_positions_and_frozen_values():
    _, _, base = _base()
    uniform = {**FIT, "mlora_init": "uniform"}      # every row masked (identity: below)
    a = build_representation("mlora_asym", uniform, 3, 1, base)
    b = build_representation("mlora_asym", uniform, 3, 1, base)
    for ea, eb in zip(a.entries, b.entries):
        if ea.role == "A":
            assert torch.equal(ea.mask, eb.mask)
            d_out = base["weights"][ea.layer].shape[0]
            assert (ea.mask.sum(1) == n_frozen_per_row(d_out, ea.shape[1])).all()
            assert torch.equal(ea.frozen[ea.mask], torch.zeros(int(ea.mask.sum())))
    mlp = build_representation("mlp_asym", FIT, 3, 1, None)
    w1 = mlp.entries[2]  # layer1.weight [9, 9]
    assert (w1.mask.sum(1) == 3).all()
    std = w1.frozen[w1.mask].std()
    assert 1.5 * w1.scale < std < 4 * w1.scale           # √6 ≈ 2.45 times the init std
    lora = build_representation("lora_asym", FIT, 3, 1, base)
    assert all(e.frozen[e.mask].abs().min() > 0 for e in lora.entries if e.mask is not None)


def test_flatten_roundtrip_and_masked_entries_fixed():
    rep = build_representation("mlp_asym", FIT, 3, 1, None)
    params = rep.init(rep.draw_codes(3, torch.Generator().manual_seed(0)))
    flat = rep.flatten(params)
    assert flat.shape == (3, rep.n_params)
    back = rep.unflatten(flat)
    for e in rep.entries:
        assert torch.equal(back[e.name], params[e.name])
        if e.mask is not None:
            assert torch.equal(params[e.name][:, e.mask], e.frozen[e.mask].expand(3, -1))
    assert rep.n_trainable == rep.n_params - int(rep.frozen_flat().sum())
    with pytest.raises(ValueError, match="layout needs"):
        rep.unflatten(flat[:, :-1])


def test_unknown_kind_and_missing_key():
    with pytest.raises(ValueError, match="unknown representation"):
        build_representation("dora", FIT, 3, 1, None)
    with pytest.raises(KeyError, match="mlp_hidden"):
        build_representation("mlp", {k: v for k, v in FIT.items() if k != "mlp_hidden"},
                             3, 1, None)


@pytest.mark.parametrize("kind", ["mlora", "mlora_asym"])
def test_identity_start_is_the_base_and_keeps_the_first_pair_unmasked(kind):
    """identity: a_1 = 1, b_1 = 1 and b_i = 0 for i > 1, so (BA)_jk = 1 for every entry
    whatever the a_i (i > 1) draw is: the start is the base field itself, masked or not."""
    model, z, base = _base()
    rep = build_representation(kind, {**FIT, "mlora_init": "identity"}, 3, 1, base)
    params = rep.init(rep.draw_codes(2, torch.Generator().manual_seed(5)))
    p = torch.rand(2, 50, 3) - 0.5
    with torch.no_grad():
        assert torch.allclose(rep.forward(params, p), model(p, z.expand(2, -1)), atol=1e-5)
    for e in rep.entries:
        if e.role == "B":
            assert torch.equal(params[e.name][:, :, 1:], torch.zeros(2, e.shape[0], 2))
        if e.mask is not None:
            d_out = base["weights"][e.layer].shape[0]
            assert not e.mask[0].any()
            assert (e.mask[1:].sum(1) == n_frozen_per_row(d_out, e.shape[1])).all()


def test_uniform_start_spreads_ba_over_every_pair():
    _, _, base = _base()
    rep = build_representation("mlora_asym", {**FIT, "mlora_init": "uniform"}, 3, 1, base)
    for e in rep.entries:
        assert torch.allclose(torch.as_tensor(e.mean), torch.tensor(1 / math.sqrt(3)))
        if e.mask is not None:
            assert e.mask[0].any()              # every row masked, the first too
    with pytest.raises(ValueError, match="fit.mlora_init"):
        build_representation("mlora", {**FIT, "mlora_init": "ones"}, 3, 1, base)


def test_partition_owners_by_hand():
    """r = 3, 5 columns: without a mask column j is pair j mod 3's; with pair 1 frozen at
    column 1 and pairs 0, 1 at column 3, those go to the next free pair in cyclic order,
    and column 4, frozen in every pair, is nobody's."""
    want = torch.tensor([[1, 0, 0, 1, 0], [0, 1, 0, 0, 1], [0, 0, 1, 0, 0]], dtype=torch.bool)
    assert torch.equal(partition_owners(3, 5, None), want)
    mask = torch.zeros(3, 5, dtype=torch.bool)
    mask[1, 1] = mask[0, 3] = mask[1, 3] = True
    mask[:, 4] = True
    want = torch.tensor([[1, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 1, 1, 1, 0]], dtype=torch.bool)
    assert torch.equal(partition_owners(3, 5, mask), want)


@pytest.mark.parametrize("kind", ["mlora", "mlora_asym"])
def test_partition_start_is_the_base_with_pairs_on_disjoint_columns(kind):
    """The shared start (ι = 0): b_i = 1 and a_i the indicator of pair i's columns, so
    (BA)_jk = 1 wherever column k has an owner. Unmasked, every column has one and the
    start is the base itself; masked, a column goes to a pair that does not freeze it, and
    only a column frozen in every pair (these 12-column layers with 4 frozen per row have
    some) starts at 0."""
    model, z, base = _base()
    rep = build_representation(kind, FIT, 3, 1, base)
    params = rep.init({e.name: torch.zeros(2, *e.shape) for e in rep.entries})
    for e in rep.entries:
        if e.role == "A":
            owned = params[e.name][0].sum(0)
            frozen_everywhere = e.mask.all(0) if e.mask is not None else torch.zeros(e.shape[1], dtype=torch.bool)
            assert torch.equal(owned, (~frozen_everywhere).float())
            if e.mask is not None:
                assert not (e.mask & (params[e.name][0] > 0)).any()
    if kind == "mlora":
        p = torch.rand(2, 50, 3) - 0.5
        with torch.no_grad():
            assert torch.allclose(rep.forward(params, p), model(p, z.expand(2, -1)), atol=1e-5)
