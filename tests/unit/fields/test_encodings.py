"""Frequency and tri-plane encodings against their formulas."""
import math

import pytest
import torch

from nfws.fields.encodings import EXACT_EVERY, frequency_encoding, to_unit_cube, triplane_features


def test_unit_cube_maps_bbox_corners():
    x = torch.tensor([[-0.7, 0.0, 0.7]])
    assert torch.allclose(to_unit_cube(x, 0.7), torch.tensor([[0.0, 0.5, 1.0]]))


def test_frequency_entries_follow_tcnn_order():
    point = (0.3, 0.7, 0.1)
    enc = frequency_encoding(torch.tensor([point]), 24)[0]
    assert enc.shape == (144,)
    # entry d*48 + 2k is sin(2^k pi x_d), the next one cos; low frequencies are exact in
    # float32, high ones carry the float32 rounding of the argument exactly like tcnn
    for d, xd in enumerate(point):
        for k in range(8):
            arg = 2.0**k * math.pi * xd
            assert enc[d * 48 + 2 * k].item() == pytest.approx(math.sin(arg), abs=1e-4)
            assert enc[d * 48 + 2 * k + 1].item() == pytest.approx(math.cos(arg), abs=1e-4)


def test_frequency_encoding_keeps_leading_axes():
    x = torch.rand(2, 5, 3, generator=torch.Generator().manual_seed(0))
    enc = frequency_encoding(x, 4)
    assert enc.shape == (2, 5, 24)
    assert enc[1, 3, 8 + 2 * 3].item() == pytest.approx(math.sin(8 * math.pi * x[1, 3, 1].item()), abs=1e-4)


def test_triplane_at_grid_vertex_sums_the_three_plane_values():
    r = 4
    planes = torch.randn(1, 3, 2, r, r, generator=torch.Generator().manual_seed(0))
    # vertex (x, y, z) = (1, 2, 3) / 3 in grid steps; plane[p, c, row, col] with col on the
    # plane's first axis and row on its second: xy -> [2, 1], xz -> [3, 1], yz -> [3, 2]
    x01 = torch.tensor([[[1 / 3, 2 / 3, 1.0]]])
    expected = planes[0, 0, :, 2, 1] + planes[0, 1, :, 3, 1] + planes[0, 2, :, 3, 2]
    out = triplane_features(planes, x01)
    assert out.shape == (1, 1, 2)
    assert torch.allclose(out[0, 0], expected, atol=1e-6)


def test_triplane_bilinear_between_vertices():
    r = 3
    planes = torch.zeros(1, 3, 1, r, r)
    planes[0, 0, 0, 0, 0] = 4.0      # xy plane, vertex (x, y) = (0, 0)
    planes[0, 0, 0, 0, 1] = 8.0      # xy plane, vertex (x, y) = (0.5, 0)
    planes[0, 2, 0, 1, 1] = 2.0      # yz plane, vertex (y, z) = (0.5, 0.5)
    # x = 0.125 is a quarter of the way from column 0 to column 1: 0.75*4 + 0.25*8 = 5;
    # y = 0, z = 0.5 hit the yz vertex (0, 0.5): value 0 there
    x01 = torch.tensor([[[0.125, 0.0, 0.5]]])
    # xy contributes 5, xz plane is zero, yz reads (y, z) = (0, 0.5) -> row 1, col 0 = 0
    assert triplane_features(planes, x01)[0, 0, 0].item() == pytest.approx(5.0, abs=1e-5)
    # at x = 1 the xy plane reads its zero last column; (y, z) = (0.25, 0.5) is halfway
    # from the yz vertex (0, 0.5) (value 0) to (0.5, 0.5) (value 2)
    x01 = torch.tensor([[[1.0, 0.25, 0.5]]])
    assert triplane_features(planes, x01)[0, 0, 0].item() == pytest.approx(1.0, abs=1e-5)


def test_triplane_is_batched_per_field():
    g = torch.Generator().manual_seed(3)
    planes = torch.randn(3, 3, 4, 5, 5, generator=g)
    x01 = torch.rand(3, 7, 3, generator=g)
    out = triplane_features(planes, x01)
    for b in range(3):
        assert torch.allclose(out[b], triplane_features(planes[b:b + 1], x01[b:b + 1])[0], atol=1e-6)


def _closed_form(x64, n_freqs):
    """float64 sin / cos of 2^k pi x, shaped [..., D, n_freqs, 2] like the encoding."""
    arg = 2.0 ** torch.arange(n_freqs, dtype=torch.float64) * math.pi * x64[..., None]
    return torch.stack([torch.sin(arg), torch.cos(arg)], dim=-1)


def test_frequency_error_bound_against_float64_closed_form():
    x = torch.rand(20000, 3, generator=torch.Generator().manual_seed(5))
    enc = frequency_encoding(x, 24).view(-1, 3, 24, 2).double()
    err = (enc - _closed_form(x.double(), 24)).abs().amax(dim=(0, 1, 3))
    k = torch.arange(24, dtype=torch.float64)
    exact_level = k - k % EXACT_EVERY
    # exact levels inherit tiny-cuda-nn's argument rounding; each doubling doubles the
    # inherited error and adds a few ulps (bound from the encoding's docstring)
    bound = 2.0**k * math.pi * 2.0**-23 + 2.0 ** (k - exact_level) * 2.0**-21
    assert (err <= bound).all(), (err / bound).tolist()
    # and low frequencies are accurate to float32 resolution
    assert err[:4].max() < 2e-6


def test_frequency_levels_stay_on_the_unit_circle():
    x = torch.rand(20000, 3, generator=torch.Generator().manual_seed(6))
    enc = frequency_encoding(x, 24).view(-1, 3, 24, 2)
    radius2 = enc[..., 0] ** 2 + enc[..., 1] ** 2
    # at most EXACT_EVERY - 1 doublings since an exact sin/cos: |r^2 - 1| stays tiny
    assert (radius2 - 1).abs().max() < 2.0**-10


def test_frequency_encoding_in_float64_matches_closed_form():
    x = torch.rand(500, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    enc = frequency_encoding(x, 24)
    assert enc.dtype == torch.float64
    assert torch.allclose(enc.view(-1, 3, 24, 2), _closed_form(x, 24), atol=1e-9, rtol=0)


def test_frequency_encoding_builds_no_graph_and_refuses_grad_points():
    x = torch.rand(4, 3, generator=torch.Generator().manual_seed(8))
    enc = frequency_encoding(x, 3)
    assert enc.grad_fn is None and not enc.requires_grad
    with pytest.raises(ValueError, match="require grad"):
        frequency_encoding(x.requires_grad_(), 3)


def test_frequency_encoding_of_a_single_point_and_of_leading_axes_agree():
    x = torch.rand(2, 4, 3, generator=torch.Generator().manual_seed(9))
    batched = frequency_encoding(x, 5)
    single = frequency_encoding(x[1, 2], 5)
    assert single.shape == (30,)
    assert torch.allclose(single, batched[1, 2], atol=1e-6)
    assert single[2 * 5 + 2 * 3].item() == pytest.approx(math.sin(8 * math.pi * x[1, 2, 1].item()), abs=1e-5)
