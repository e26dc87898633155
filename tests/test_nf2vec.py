"""nf2vec decoder and the box volume renderer against closed forms."""
import math

import pytest
import torch

from nfws.models.nf2vec import NF2VecDecoder, box_interval, frequency_encoding, render_rays, trunc_exp


def test_frequency_encoding_layout():
    x = torch.tensor([[0.25, 0.0, 0.5]])
    enc = frequency_encoding(x, 2)
    s, c = math.sin, math.cos
    expected = [s(math.pi / 4), c(math.pi / 4), s(math.pi / 2), c(math.pi / 2),
                0.0, 1.0, 0.0, 1.0,
                s(math.pi / 2), c(math.pi / 2), s(math.pi), c(math.pi)]
    assert torch.allclose(enc[0], torch.tensor(expected), atol=1e-6)


def test_trunc_exp_value_and_clamped_gradient():
    x = torch.tensor([1.0, 20.0], requires_grad=True)
    y = trunc_exp(x)
    y.sum().backward()
    assert torch.allclose(y, torch.exp(torch.tensor([1.0, 20.0])))
    assert torch.allclose(x.grad, torch.tensor([math.e, math.exp(15.0)]))


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
    assert torch.allclose(sigma, torch.exp(raw[..., 3] - 1.0))


def test_box_interval_by_hand():
    o = torch.tensor([[0.0, 0.0, 2.0], [0.0, 2.0, 2.0], [0.0, 0.0, 0.0]])
    d = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    near, far = box_interval(o, d, 0.7)
    assert torch.allclose(far - near, torch.tensor([1.4, 0.0, 0.7]), atol=1e-6)  # miss -> empty
    assert near[0].item() == pytest.approx(1.3) and near[2].item() == 0.0      # inside -> from 0


def test_render_constant_field_matches_beer_lambert():
    sigma0, colour = 1.5, torch.tensor([1.0, 0.5, 0.25])

    def field(x):
        return colour.expand(*x.shape[:-1], 3), torch.full(x.shape[:-1], sigma0)

    o = torch.tensor([[[0.0, 0.0, 2.0], [0.0, 2.0, 2.0], [0.3, -0.2, 3.0]]])
    d = torch.tensor([[[0.0, 0.0, -1.0], [0.0, 0.0, -1.0], [0.0, 0.0, -1.0]]])
    gen = torch.Generator().manual_seed(0)
    rgb, alpha = render_rays(field, o, d, n_samples=16, bbox=0.7, generator=gen)
    hit = 1.0 - math.exp(-sigma0 * 1.4)      # path length through the box is 1.4
    assert alpha[0].tolist() == pytest.approx([hit, 0.0, hit], rel=1e-5, abs=1e-6)
    assert torch.allclose(rgb[0, 0], hit * colour, atol=1e-5)
    assert torch.allclose(rgb[0, 1], torch.zeros(3))
