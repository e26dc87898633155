"""nf2vec decoder against an independent evaluation of its layers."""
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
