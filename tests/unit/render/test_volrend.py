import math

import torch

from nfws.render.volrend import render_pixels, render_rays


def _slab_field(sigma, colour, x_lo, x_hi):
    """Constant density and colour inside the slab x_lo < x < x_hi, empty elsewhere."""
    def field(x):
        inside = ((x[..., 0] > x_lo) & (x[..., 0] < x_hi)).float()
        rgb = torch.tensor(colour).expand(*x.shape[:-1], 3)
        return rgb, sigma * inside
    return field


def test_constant_density_slab_closed_form():
    sigma, colour, bg = 3.0, (0.2, 0.5, 0.9), torch.tensor([0.1, 0.1, 0.1])
    # slab fills the box along x: rays along +x cross 0.6 of material
    field = _slab_field(sigma, colour, -1.0, 1.0)
    box = torch.tensor([[[-0.3, -1.0, -1.0], [0.3, 1.0, 1.0]]])
    origins = torch.tensor([[[-2.0, 0.0, 0.0], [-2.0, 0.5, 0.2]]])
    dirs = torch.tensor([[[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])
    out = render_rays(field, origins, dirs, box, 64, bg)
    opacity = 1 - math.exp(-sigma * 0.6)
    assert torch.allclose(out.opacity, torch.full((1, 2), opacity), atol=1e-5)
    expected = torch.tensor(colour) * opacity + bg * (1 - opacity)
    assert torch.allclose(out.rgb, expected.expand(1, 2, 3), atol=1e-5)
    # depth: expected t under an exponential density truncated at the slab exit
    t0, length = 1.7, 0.6
    mean_in = (1 / sigma) - length * math.exp(-sigma * length) / (1 - math.exp(-sigma * length))
    assert torch.allclose(out.depth, torch.full((1, 2), t0 + mean_in), atol=2e-3)


def test_jittered_render_matches_closed_form_for_constant_density():
    field = _slab_field(2.0, (1.0, 0.0, 0.0), -5.0, 5.0)
    box = torch.tensor([[[-0.5, -0.5, -0.5], [0.5, 0.5, 0.5]]])
    origins = torch.tensor([[[0.0, 0.0, -3.0]]]).expand(1, 10, 3)
    dirs = torch.tensor([[[0.0, 0.0, 1.0]]]).expand(1, 10, 3)
    jitter = torch.rand(1, 10, 16, generator=torch.Generator().manual_seed(1))
    out = render_rays(field, origins, dirs, box, 16, torch.zeros(3), jitter)
    assert torch.allclose(out.opacity, torch.full((1, 10), 1 - math.exp(-2.0)), atol=1e-5)


def test_rays_missing_the_box_show_background_and_batches_are_independent():
    field_dense = _slab_field(50.0, (0.0, 1.0, 0.0), -5.0, 5.0)

    def stacked(x):  # NeRF 0 is dense, NeRF 1 is empty
        rgb, sigma = field_dense(x)
        return rgb, sigma * torch.tensor([1.0, 0.0])[:, None]

    box = torch.tensor([[[-0.5] * 3, [0.5] * 3]] * 2)
    origins = torch.tensor([[[0.0, 0.0, -3.0], [0.0, 3.0, -3.0]]] * 2)
    dirs = torch.tensor([[[0.0, 0.0, 1.0]] * 2] * 2)
    bg = torch.tensor([0.3, 0.2, 0.1])
    out = render_pixels(stacked, origins, dirs, box, 32, bg, rays_per_call=1)
    assert out.opacity[0, 0] > 0.999 and torch.allclose(out.rgb[0, 0], torch.tensor([0.0, 1.0, 0.0]), atol=1e-3)
    for b, r in [(0, 1), (1, 0), (1, 1)]:
        assert out.opacity[b, r] == 0 and torch.allclose(out.rgb[b, r], bg)
