"""nf2vec decoder against an independent evaluation of its layers."""
import pytest
import torch

from nfws.fields.encodings import frequency_encoding
from nfws.gmn.nf2vec import NF2VecDecoder


def test_decoder_matches_concatenated_layers_with_skip():
    torch.manual_seed(0)
    dec = NF2VecDecoder(d_embed=5, width=8, n_freqs=3, bbox=0.7).double()
    pts = torch.rand(2, 4, 3, dtype=torch.float64) * 1.4 - 0.7
    emb = torch.randn(2, 5, dtype=torch.float64)
    rgb, sigma = dec(pts, emb)
    # independent evaluation: concatenate [freq(x), embedding] and apply each layer as written
    feat = frequency_encoding((pts + 0.7) / 1.4, 3)
    inp = torch.cat([feat, emb[:, None, :].expand(2, 4, 5)], -1)
    h1 = torch.relu(dec.first(inp))
    h2 = torch.relu(dec.second(h1)) + torch.relu(dec.skip(inp))
    raw = dec.out(torch.relu(dec.fourth(torch.relu(dec.third(h2)))))
    assert inp.shape[-1] == 18 + 5
    assert torch.allclose(rgb, torch.sigmoid(raw[..., :3]))
    assert torch.allclose(sigma.double(), torch.exp(raw[..., 3] - 1.0), rtol=1e-5)


def test_decoder_reads_144_point_features_by_default():
    dec = NF2VecDecoder(d_embed=10, width=4)
    assert dec.first.in_features == 144 + 10 and dec.skip.in_features == 154
    rgb, sigma = dec(torch.zeros(3, 5, 3), torch.zeros(3, 10))
    assert rgb.shape == (3, 5, 3) and sigma.shape == (3, 5) and (sigma > 0).all()


def test_batch_codes_are_z_scores_within_each_architecture_hand_computed():
    """Two architectures with different offsets: each item minus its architecture's batch
    mean, each column over the pooled within-architecture standard deviation."""
    dec = NF2VecDecoder(d_embed=2, width=4, n_freqs=2, embedding_norm="batch").double()
    emb = torch.tensor([[1.0, 5.0], [3.0, 5.0], [100.0, 7.0], [104.0, 7.0], [50.0, 9.0]],
                       dtype=torch.float64)
    # column 0: deviations -1, 1 (A), -2, 2 (B), 0 (C alone) -> pooled var 10 / 5 = 2
    # column 1: constant within every architecture -> 0
    want = torch.tensor([[-1, 0], [1, 0], [-2, 0], [2, 0], [0, 0]], dtype=torch.float64)
    want[:, 0] /= 2 ** 0.5
    got = dec.codes(emb, ["A", "A", "B", "B", "C"])
    assert torch.allclose(got, want)


def test_batch_codes_ignore_each_architectures_offset_and_a_common_scale():
    torch.manual_seed(0)
    dec = NF2VecDecoder(d_embed=3, width=4, n_freqs=2, embedding_norm="batch").double()
    emb = torch.randn(6, 3, dtype=torch.float64)
    groups = ["A", "B", "A", "B", "A", "B"]
    moved = 1e-2 * emb + torch.tensor([[0.07, -3.0, 1e3] if g == "A" else [5.0, 2.0, -1.0]
                                       for g in groups], dtype=torch.float64)
    assert torch.allclose(dec.codes(moved, groups), dec.codes(emb, groups))


def test_codes_are_the_embeddings_without_norm_and_a_batch_of_one_stays_finite():
    emb = torch.randn(3, 4)
    assert torch.equal(NF2VecDecoder(d_embed=4, width=8).codes(emb, ["A"] * 3), emb)
    one = NF2VecDecoder(d_embed=4, width=8, embedding_norm="batch").codes(emb[:1], ["A"])
    assert torch.equal(one, torch.zeros(1, 4))


def test_decoder_rejects_an_unknown_embedding_norm_and_mismatched_groups():
    with pytest.raises(ValueError, match="embedding_norm must be one of"):
        NF2VecDecoder(d_embed=4, width=8, embedding_norm="layer")
    with pytest.raises(ValueError, match="2 groups for 3 embeddings"):
        NF2VecDecoder(d_embed=4, width=8, embedding_norm="batch").codes(torch.zeros(3, 4), ["A", "B"])
