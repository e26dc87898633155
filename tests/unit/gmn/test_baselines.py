"""Table-5 baselines: nf2vec's row layout and max-pool, the tri-plane tokeniser."""
import pytest
import torch

from nfws.gmn.baselines import NF2VecMLPEncoder, TriplaneTransformer, can_encode, mlp_rows


def test_mlp_rows_layout_by_hand():
    w0 = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)  # [out=4 (width), in=3]
    w1 = torch.ones(2, 4, 4)
    w2 = torch.full((2, 2, 4), 7.0)                                   # [out=2, in=4 (width)]
    rows = mlp_rows({"mlp.10": w2, "mlp.0": w0, "mlp.1": w1}, row_width=4)  # numeric key order
    assert rows.shape == (2, 3 + 4 + 2, 4)
    assert torch.equal(rows[0, 0], torch.tensor([0.0, 3.0, 6.0, 9.0]))   # column 0 of w0
    assert torch.equal(rows[1, 2], w0[1, :, 2])
    assert torch.equal(rows[:, 3:7], w1) and torch.equal(rows[:, 7:], w2)
    with pytest.raises(ValueError, match="mlp.0"):
        mlp_rows({"mlp.0": torch.zeros(1, 5, 3)}, row_width=4)


def test_nf2vec_encoder_ignores_row_order_and_row_count_is_free():
    torch.manual_seed(0)
    enc = NF2VecMLPEncoder(row_width=4, widths=(8, 8), d_embed=6).eval()
    params = {"mlp.0": torch.randn(3, 4, 5), "mlp.1": torch.randn(3, 4, 4)}
    shuffled = {"mlp.0": params["mlp.0"][:, :, torch.randperm(5)], "mlp.1": params["mlp.1"][:, torch.randperm(4)]}
    out = enc(params)
    assert out.shape == (3, 6)
    assert torch.allclose(out, enc(shuffled), atol=1e-6)       # max-pool over rows
    assert enc({"mlp.0": params["mlp.0"]}).shape == (3, 6)       # fewer layers still readable


def test_triplane_tokens_are_patches():
    model = TriplaneTransformer(channels=2, resolution=4, patch=2, d_model=8, heads=2, layers=1, d_embed=3)
    planes = torch.arange(1 * 3 * 2 * 4 * 4, dtype=torch.float32).reshape(1, 3, 2, 4, 4)
    tok = model.tokens(planes)
    assert tok.shape == (1, 3 * 4, 2 * 2 * 2)
    # plane 1, patch row 1, patch col 0 -> token 1 * 4 + 1 * 2 + 0 = 6
    expected = planes[0, 1, :, 2:4, 0:2].reshape(-1)
    assert torch.equal(tok[0, 6], expected)


def test_triplane_transformer_pads_channels_and_rejects_other_resolutions():
    torch.manual_seed(0)
    model = TriplaneTransformer(channels=4, resolution=4, patch=2, d_model=8, heads=2, layers=1, d_embed=3).eval()
    planes = torch.randn(2, 3, 2, 4, 4)
    padded = torch.cat([planes, torch.zeros(2, 3, 2, 4, 4)], 2)
    assert torch.allclose(model({"triplane": planes}), model({"triplane": padded}), atol=1e-6)
    with pytest.raises(ValueError, match="built for"):
        model({"triplane": torch.randn(2, 3, 4, 8, 8)})
    with pytest.raises(ValueError, match="triplane"):
        model({"mlp.0": torch.randn(2, 4, 4)})


def test_can_encode_matches_table_5_coverage():
    from nfws.fields.spec import ArchSpec
    mlp = lambda **k: ArchSpec("m", "MLP", **k)
    tri = lambda **k: ArchSpec("t", "TRI", activation="sine", **{"triplane_res": 32, "triplane_channels": 16, **k})
    nf2vec, cardace = {"kind": "nf2vec_mlp", "row_width": 64}, {"kind": "triplane_transformer", "resolution": 32, "channels": 16}
    assert can_encode(nf2vec, mlp()) and can_encode(nf2vec, mlp(hidden_layers=2))
    assert not can_encode(nf2vec, mlp(width=32))                       # MLP-32H: no 64-wide side
    assert not can_encode(nf2vec, tri())                               # reads MLPs only
    assert can_encode(cardace, tri(hidden_layers=2)) and can_encode(cardace, tri(triplane_channels=8))
    assert not can_encode(cardace, tri(triplane_res=16)) and not can_encode(cardace, mlp())
    assert can_encode({"kind": "gmn"}, tri(triplane_res=16))
