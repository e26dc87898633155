"""Hierarchical LoRA layer encoder: rank-pair tokens, lossless aggregation, permutation
behaviour, decoding, the width check and a short training run."""
import pytest
import torch
from torch.autograd.functional import jacobian

from nfws.mlora.ddpm import GaussianDiffusion
from nfws.mlora.lora_encoder import (HierarchicalLoRADiT, LoRALayerEncoder, lora_structure,
                                     rank_heads)


def layout(rank=2, extra=False):
    out = [{"name": "layer0.A", "shape": [rank, 2], "role": "A"},
           {"name": "layer0.B", "shape": [3, rank], "role": "B"},
           {"name": "layer1.A", "shape": [rank, 3], "role": "A"},
           {"name": "layer1.B", "shape": [4, rank], "role": "B"}]
    if extra:
        out.append({"name": "head.bias", "shape": [4], "role": "bias"})
    return out


def test_structure_by_hand():
    layers, others = lora_structure(layout(extra=True))
    assert layers[0] == {"factors": ("layer0.A", "layer0.B"), "rank": 2, "d_in": 2, "d_out": 3,
                         "a": (0, 4), "b": (4, 10)}
    assert layers[1] == {"factors": ("layer1.A", "layer1.B"), "rank": 2, "d_in": 3, "d_out": 4,
                         "a": (10, 16), "b": (16, 24)}
    assert others == [(24, 28)]
    bad = layout()
    bad[1] = {"name": "layer0.B", "shape": [3, 5], "role": "B"}
    with pytest.raises(ValueError, match="rank"):
        lora_structure(bad)
    with pytest.raises(ValueError, match="LoRA A"):
        lora_structure([{"name": "w", "shape": [3, 3], "role": "weight"}])


def test_rank_pair_tokens_are_rows_of_A_and_columns_of_B():
    model = HierarchicalLoRADiT(layout(), hidden=16, depth=1, heads=2)
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0]])                  # A [r=2, d_in=2]
    b = torch.tensor([[5.0, 6.0], [7.0, 8.0], [9.0, 10.0]])     # B [d_out=3, r=2]
    x = torch.cat([a.reshape(-1), b.reshape(-1), torch.zeros(14)]).unsqueeze(0)
    pairs = model.pairs(x, 0)[0]
    torch.testing.assert_close(pairs, torch.tensor([[1.0, 2.0, 5.0, 7.0, 9.0],
                                                    [3.0, 4.0, 6.0, 8.0, 10.0]]))


def permute_ranks(x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Same LoRA product BA with rank components reordered (A rows, B columns)."""
    a0 = x[:, 0:4].reshape(-1, 2, 2)[:, perm]
    b0 = x[:, 4:10].reshape(-1, 3, 2)[:, :, perm]
    a1 = x[:, 10:16].reshape(-1, 2, 3)[:, perm]
    b1 = x[:, 16:24].reshape(-1, 4, 2)[:, :, perm]
    return torch.cat([t.reshape(len(x), -1) for t in (a0, b0, a1, b1)], dim=1)


def test_layer_token_permutes_with_the_rank_pairs_only_without_rank_encoding():
    """Every rank token goes through the same maps and attention is permutation-equivariant,
    so reordering the pairs (same BA) reorders the concatenated blocks of the layer token."""
    torch.manual_seed(0)
    x = torch.randn(3, 24)
    perm = torch.tensor([1, 0])
    y = permute_ranks(x, perm)
    plain = HierarchicalLoRADiT(layout(), hidden=16, depth=1, heads=2, rank_encoding=False)
    blocks = plain.encode(x).reshape(3, 2, 2, 8)  # [batch, layer, rank, hidden / r]
    torch.testing.assert_close(plain.encode(y).reshape(3, 2, 2, 8), blocks[:, :, perm])
    ranked = HierarchicalLoRADiT(layout(), hidden=16, depth=1, heads=2, rank_encoding=True)
    want = ranked.encode(x).reshape(3, 2, 2, 8)[:, :, perm]
    assert not torch.allclose(ranked.encode(y).reshape(3, 2, 2, 8), want, atol=1e-4)


def test_layer_encoder_is_equivariant_to_a_cyclic_rank_permutation():
    torch.manual_seed(1)
    enc = LoRALayerEncoder(rank=3, d_in=3, d_out=2, hidden=18, rank_encoding=False)
    pairs = torch.randn(4, 3, 5)
    perm = torch.tensor([2, 0, 1])
    blocks = enc(pairs).reshape(4, 3, 6)
    torch.testing.assert_close(enc(pairs[:, perm]).reshape(4, 3, 6), blocks[:, perm])


def one_layer(rank=2, d_in=3, d_out=2):
    return [{"name": "l.A", "shape": [rank, d_in], "role": "A"},
            {"name": "l.B", "shape": [d_out, rank], "role": "B"}]


@pytest.mark.parametrize("rank_encoding", [True, False])
@pytest.mark.parametrize("tied", [False, True])
def test_layer_token_is_injective_in_the_layers_pairs(rank_encoding, tied):
    """Jacobian of the layer token (width 10) w.r.t. the layer's 10 flat values has rank 10.

    The mean-pooled encoder failed this: without the rank encoding its token
    (1/r) sum_i g(p_i) used the same permutation-equivariant map for every pair, so it was
    invariant to swapping p_1 and p_2; at a point with p_1 = p_2 (``tied``) that makes the
    Jacobian's column blocks of the two pairs equal, so its rank was at most d_in + d_out = 5.
    With or without the encoding, a pooled token of width ``hidden`` has rank at most
    ``hidden``, below r·(d_in + d_out) whenever the backbone is narrower than the layer.
    """
    torch.manual_seed(2)
    model = HierarchicalLoRADiT(one_layer(), hidden=10, depth=1, heads=2,
                                rank_encoding=rank_encoding).double()
    a, b = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 2, dtype=torch.float64)
    if tied:  # rows of A equal, columns of B equal: both rank pairs the same
        a, b = a[:1].expand(2, -1), b[:, :1].expand(-1, 2)
    x = torch.cat([a.reshape(-1), b.reshape(-1)])
    jac = jacobian(lambda v: model.encode(v.unsqueeze(0))[0, 0], x)
    assert jac.shape == (10, 10)
    assert torch.linalg.matrix_rank(jac).item() == 10


def test_decoder_writes_pairs_back_into_A_rows_and_B_columns():
    model = HierarchicalLoRADiT(layout(extra=True), hidden=16, depth=1, heads=2)
    pairs = torch.tensor([[1.0, 2.0, 5.0, 7.0, 9.0], [3.0, 4.0, 6.0, 8.0, 10.0]])
    with torch.no_grad():
        model.decoders[0].bias.copy_(pairs.reshape(-1))  # weights stay zero
        model.others.embed_out[0].bias.copy_(torch.tensor([11.0, 12.0, 13.0, 14.0]))
    out = model(torch.randn(2, 28), torch.tensor([3, 7]))
    assert out.shape == (2, 28)
    want_layer0 = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0])
    torch.testing.assert_close(out[:, :10], want_layer0.expand(2, -1))
    torch.testing.assert_close(out[:, 10:24], torch.zeros(2, 14))
    torch.testing.assert_close(out[:, 24:], torch.tensor([11.0, 12.0, 13.0, 14.0]).expand(2, -1))


def test_other_tensor_wider_than_hidden_is_split_into_chunk_tokens():
    # LoRA layers take 24 values, then a 40-value tensor: chunks of 16, 16 and 8 at hidden 16
    model = HierarchicalLoRADiT(layout() + [{"name": "head.w", "shape": [5, 8]}], hidden=16,
                                depth=1, heads=2)
    assert model.others.chunks == [(24, 40), (40, 56), (56, 64)]
    assert model.layer_pos.shape == (2 + 3, 16)
    with torch.no_grad():
        for proj, (s, e) in zip(model.others.embed_out, model.others.chunks):
            proj.bias.copy_(torch.arange(s, e, dtype=torch.float32))
    out = model(torch.randn(3, 64), torch.tensor([0, 5, 9]))
    torch.testing.assert_close(out[:, 24:], torch.arange(24, 64, dtype=torch.float32).expand(3, -1))


def test_rank_heads_and_hidden_that_is_not_a_multiple_of_the_rank():
    assert rank_heads(96, 4) == 4  # default config: hidden 384 / rank 4
    assert rank_heads(8, 3) == 2   # 3 does not divide 8; 2 is the largest count below that does
    assert rank_heads(5, 2) == 1
    model = HierarchicalLoRADiT(layout(rank=3), hidden=24, depth=1, heads=2)
    assert model.encoders[0].attn.heads == 2 and model.encoders[0].proj.out_features == 8
    assert model.encode(torch.randn(2, 36)).shape == (2, 2, 24)
    with pytest.raises(ValueError, match=r"diffusion.model.hidden = 22 is not a multiple of the "
                                         r"LoRA rank 3"):
        HierarchicalLoRADiT(layout(rank=3), hidden=22, depth=1, heads=2)


def test_hidden_narrower_than_a_layer_is_refused():
    # layer1: r·(d_in + d_out) = 2 × (3 + 4) = 14 values; layer0 needs 2 × (2 + 3) = 10
    with pytest.raises(ValueError, match=r"diffusion.model.hidden = 12 is narrower than LoRA "
                                         r"layer layer1.A/layer1.B .* needs r·\(d_in \+ d_out\) "
                                         r"= 14 values.*diverge.*at least 14"):
        HierarchicalLoRADiT(layout(), hidden=12, depth=1, heads=2)
    # the default config's layer shape: rank 4 on a 48 -> 48 layer needs 4 × 96 = 384
    wide = [{"name": "a", "shape": [4, 48], "role": "A"},
            {"name": "b", "shape": [48, 4], "role": "B"}]
    with pytest.raises(ValueError, match="needs .* = 384 values"):
        HierarchicalLoRADiT(wide, hidden=128, depth=1, heads=4)
    assert HierarchicalLoRADiT(wide, hidden=384, depth=1, heads=4).encoders[0].attn.heads == 4


def test_short_training_run_fits_a_few_weight_vectors():
    """300 AdamW steps on 4 vectors bring the DDPM loss (1 for a zero predictor) below 0.5.

    A denoiser that loses part of its input cannot predict that part of the noise at high
    noise levels, where the noise is nearly the input; the mean-pooled encoder, blind to
    which pair is which, stayed above this bound.
    """
    torch.manual_seed(0)
    lay = layout()  # 24 values in 2 layers of rank 2
    x = torch.randn(4, 24)
    model = HierarchicalLoRADiT(lay, hidden=32, depth=1, heads=2, mlp_ratio=2.0)
    diffusion = GaussianDiffusion(500)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(300):
        loss = diffusion.loss(model, x, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-50:]) / 50 < 0.5  # mean over the last 50 steps: t is drawn per step


def test_factors_pair_by_their_layer_index_not_their_order():
    # A0 [2, 2], B1 [4, 2], A1 [2, 3], B0 [3, 2]: slices (0, 4), (4, 12), (12, 18), (18, 24)
    shuffled = [{"name": "layer0.A", "shape": [2, 2], "role": "A", "layer": 0},
                {"name": "layer1.B", "shape": [4, 2], "role": "B", "layer": 1},
                {"name": "layer1.A", "shape": [2, 3], "role": "A", "layer": 1},
                {"name": "layer0.B", "shape": [3, 2], "role": "B", "layer": 0}]
    layers, others = lora_structure(shuffled)
    assert layers == [{"factors": ("layer0.A", "layer0.B"), "rank": 2, "d_in": 2, "d_out": 3,
                       "a": (0, 4), "b": (18, 24)},
                      {"factors": ("layer1.A", "layer1.B"), "rank": 2, "d_in": 3, "d_out": 4,
                       "a": (12, 18), "b": (4, 12)}]
    assert others == []
    twice = [dict(e, layer=0) for e in shuffled]
    with pytest.raises(ValueError, match="layout layer 0: 2 A and 2 B factors"):
        lora_structure(twice)
