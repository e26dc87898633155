"""Hierarchical LoRA layer encoder: rank-pair tokens, permutation behaviour, decoding."""
import pytest
import torch

from nfws.mlora.lora_encoder import HierarchicalLoRADiT, lora_structure


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
    assert layers[0] == {"rank": 2, "d_in": 2, "d_out": 3, "a": (0, 4), "b": (4, 10)}
    assert layers[1] == {"rank": 2, "d_in": 3, "d_out": 4, "a": (10, 16), "b": (16, 24)}
    assert others == [(24, 28)]
    bad = layout()
    bad[1] = {"name": "layer0.B", "shape": [3, 5], "role": "B"}
    with pytest.raises(ValueError, match="rank"):
        lora_structure(bad)
    with pytest.raises(ValueError, match="LoRA A"):
        lora_structure([{"name": "w", "shape": [3, 3], "role": "weight"}])


def test_rank_pair_tokens_are_rows_of_A_and_columns_of_B():
    model = HierarchicalLoRADiT(layout(), hidden=8, depth=1, heads=2)
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


def test_encoder_invariant_to_rank_permutation_only_without_rank_encoding():
    torch.manual_seed(0)
    x = torch.randn(3, 24)
    y = permute_ranks(x, torch.tensor([1, 0]))
    plain = HierarchicalLoRADiT(layout(), hidden=8, depth=1, heads=2, rank_encoding=False)
    torch.testing.assert_close(plain.encode(x), plain.encode(y))
    ranked = HierarchicalLoRADiT(layout(), hidden=8, depth=1, heads=2, rank_encoding=True)
    assert not torch.allclose(ranked.encode(x), ranked.encode(y), atol=1e-4)
    assert plain.encode(x).shape == (3, 2, 8)


def test_decoder_writes_pairs_back_into_A_rows_and_B_columns():
    model = HierarchicalLoRADiT(layout(extra=True), hidden=8, depth=1, heads=2)
    pairs = torch.tensor([[1.0, 2.0, 5.0, 7.0, 9.0], [3.0, 4.0, 6.0, 8.0, 10.0]])
    with torch.no_grad():
        model.decoders[0].bias.copy_(pairs.reshape(-1))  # weights stay zero
        model.other_out[0].bias.copy_(torch.tensor([11.0, 12.0, 13.0, 14.0]))
    out = model(torch.randn(2, 28), torch.tensor([3, 7]))
    assert out.shape == (2, 28)
    want_layer0 = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0])
    torch.testing.assert_close(out[:, :10], want_layer0.expand(2, -1))
    torch.testing.assert_close(out[:, 10:24], torch.zeros(2, 14))
    torch.testing.assert_close(out[:, 24:], torch.tensor([11.0, 12.0, 13.0, 14.0]).expand(2, -1))


def test_rank_that_does_not_divide_hidden_gets_one_head_per_rank():
    model = HierarchicalLoRADiT(layout(rank=3), hidden=8, depth=1, heads=2)
    assert model.encoders[0].attn.heads == 3
    assert model.encoders[0].proj.out_features == 9  # 3 heads of ceil(8 / 3) = 3
    assert model.encode(torch.randn(2, 36)).shape == (2, 2, 8)


def test_factors_pair_by_their_layer_index_not_their_order():
    # A0 [2, 2], B1 [4, 2], A1 [2, 3], B0 [3, 2]: slices (0, 4), (4, 12), (12, 18), (18, 24)
    shuffled = [{"name": "layer0.A", "shape": [2, 2], "role": "A", "layer": 0},
                {"name": "layer1.B", "shape": [4, 2], "role": "B", "layer": 1},
                {"name": "layer1.A", "shape": [2, 3], "role": "A", "layer": 1},
                {"name": "layer0.B", "shape": [3, 2], "role": "B", "layer": 0}]
    layers, others = lora_structure(shuffled)
    assert layers == [{"rank": 2, "d_in": 2, "d_out": 3, "a": (0, 4), "b": (18, 24)},
                      {"rank": 2, "d_in": 3, "d_out": 4, "a": (12, 18), "b": (4, 12)}]
    assert others == []
    twice = [dict(e, layer=0) for e in shuffled]
    with pytest.raises(ValueError, match="layout layer 0: 2 A and 2 B factors"):
        lora_structure(twice)
