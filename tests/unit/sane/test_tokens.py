"""SANE tokens: hash tokens against hand-indexed dense grids, MLP token layout, the
function-preserving permutation and the per-layer standardisation."""
import pytest
import torch

from nfws.fields.spec import ArchSpec
from nfws.fields.stacks import FieldStack, make_stack
from nfws.sane.tokens import (Normaliser, TokenLayout, hash_tokens, mlp_tokens,
                              permute_hidden)

# two dense levels: scale_l = 2 * 2^l - 1 -> scales 1, 3 -> resolutions 2, 4;
# table 2^6 = 64 entries holds 2^3 = 8 and 4^3 = 64 vertices, so both levels are dense
TINY = ArchSpec("TINY", "HASH", hidden_layers=1, width=32, hash_levels=2, hash_log2_T=6,
                hash_features=2, hash_base_res=2)


def labelled_table():
    """table[l, i, f] = 1000 l + 10 i + f, so a looked-up value names its entry."""
    l, i, f = torch.meshgrid(torch.arange(2), torch.arange(64), torch.arange(2), indexing="ij")
    return (1000 * l + 10 * i + f).float()


def test_hash_token_equals_hand_indexed_corners():
    x = torch.tensor([[[0.3, 0.6, 0.7]]])
    tok = hash_tokens(labelled_table()[None], x, TINY)[0, 0]
    assert tok.shape == (8 * 2 * 2,)
    # level 0: pos = x * 1 + 0.5 = (0.8, 1.1, 1.2) -> cell (0, 1, 1), res 2:
    #   entry = (cx + 2 cy + 4 cz) mod 8 (the level's size: corners with c = 2 lie past the
    #   grid and wrap, as in tiny-cuda-nn); corner k offsets dimension d by bit d of k
    # level 1: pos = x * 3 + 0.5 = (1.4, 2.3, 2.6) -> cell (1, 2, 2), res 4:
    #   entry = cx + 4 cy + 16 cz
    expected_entries = {
        0: [e % 8 for e in (0 + 2 + 4, 1 + 2 + 4, 0 + 4 + 4, 1 + 4 + 4,
                            0 + 2 + 8, 1 + 2 + 8, 0 + 4 + 8, 1 + 4 + 8)],
        1: [1 + 8 + 32, 2 + 8 + 32, 1 + 12 + 32, 2 + 12 + 32,
            1 + 8 + 48, 2 + 8 + 48, 1 + 12 + 48, 2 + 12 + 48],
    }
    for level, entries in expected_entries.items():
        for k, entry in enumerate(entries):
            for f in range(2):
                assert tok[(level * 8 + k) * 2 + f] == 1000 * level + 10 * entry + f


def test_hash_tokens_read_each_nerf_own_table():
    tables = torch.stack([labelled_table(), -labelled_table()])
    x = torch.rand(2, 5, 3, generator=torch.Generator().manual_seed(0))
    tok = hash_tokens(tables, x, TINY)
    single = hash_tokens(tables[:1], x[1:], TINY)
    assert torch.equal(tok[1], -single[0])


def test_mlp_token_layout_and_mask():
    layout = TokenLayout(TINY, n_points=3, n_pos=2)
    # mlp.0 [32, 16] (8 inputs padded to 16), mlp.1 [16, 32]; in_max 32 -> tokens of 128
    assert [s for s in TINY.mlp_shapes()] == [(32, 16), (16, 32)]
    assert (layout.mlp_dim, layout.layer_tokens(), layout.length) == (128, [8, 4], 3 + 12 + 2)
    w0 = torch.arange(32 * 16).float().reshape(1, 32, 16) + 1
    w1 = -torch.arange(16 * 32).float().reshape(1, 16, 32) - 1
    tok = mlp_tokens([w0, w1], layout)[0]
    # token j of layer 0 holds rows 4j..4j+3, each padded from 16 to 32 columns
    assert torch.equal(tok[2, 1 * 32 + 5], w0[0, 9, 5])
    assert torch.equal(tok[2, 1 * 32 + 20], torch.tensor(0.0))
    # layer 1 starts at token 8; only its first 4 rows (r, g, b, density) are functional
    assert torch.equal(tok[8, 3 * 32 + 31], w1[0, 3, 31])
    assert torch.all(tok[9:] == 0)
    mask = layout.mlp_mask()
    assert mask[:8].sum() == 32 * 16 and mask[8].sum() == 4 * 32 and mask[9:].sum() == 0


def test_permutation_keeps_the_field_function():
    spec = ArchSpec("H", "HASH", hidden_layers=3, width=32, hash_levels=3, hash_log2_T=8,
                    hash_features=2, hash_base_res=4)
    gen = torch.Generator().manual_seed(1)
    stack = make_stack(spec, 3, gen)
    with torch.no_grad():
        for p in stack.params.values():       # larger weights than the init, so outputs vary
            p.normal_(0, 0.2, generator=gen)
    arrays = stack.state_arrays()
    weights = [torch.from_numpy(arrays[f"mlp.{i}"]) for i in range(4)]
    permuted = permute_hidden(weights, torch.Generator().manual_seed(2))
    assert not torch.equal(permuted[1], weights[1])
    other = FieldStack.from_arrays(spec, {**arrays, **{f"mlp.{i}": w.numpy()
                                                        for i, w in enumerate(permuted)}})
    x = (torch.rand(3, 200, 3, generator=gen) - 0.5) * 1.2
    with torch.no_grad():
        rgb, sigma = stack(x)
        rgb_p, sigma_p = other(x)
    assert sigma.std() > 0
    torch.testing.assert_close(rgb_p, rgb, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sigma_p, sigma, rtol=1e-4, atol=1e-6)


def test_normaliser_standardises_each_layer_of_the_fitted_nerfs():
    layout = TokenLayout(TINY, n_points=4, n_pos=1)
    gen = torch.Generator().manual_seed(3)
    w0 = 2.0 + 3.0 * torch.randn(5, 32, 16, generator=gen)
    w1 = -1.0 + 0.1 * torch.randn(5, 16, 32, generator=gen)
    tables = torch.randn(5, 2, 64, 2, generator=gen)
    norm = Normaliser.fit(tables, [w0, w1], layout)
    _, m = norm.normalise(torch.zeros(5, 4, layout.hash_dim), mlp_tokens([w0, w1], layout), layout)
    first, last = m[:, :8][:, layout.mlp_mask()[:8] > 0], m[:, 8:][:, layout.mlp_mask()[8:] > 0]
    for part in (first, last):
        assert abs(float(part.mean())) < 1e-5 and abs(float(part.std()) - 1.0) < 1e-3
    assert torch.all(m[:, 9:] == 0)


def test_layout_rejects_non_hash_architectures():
    with pytest.raises(ValueError, match="HASH"):
        TokenLayout(ArchSpec("M", "MLP"), 4, 1)
