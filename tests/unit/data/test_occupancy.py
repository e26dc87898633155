"""Occupancy samples and surface points against analytic shapes."""
import numpy as np
import pytest
import torch

from nfws.data.occupancy import HALF_EXTENT, sample_occupancy, surface_points
from nfws.data.sdf_objects import Part, SDFObject
from nfws.data.synthetic3d import make_object


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_sphere_occupancy_and_sdf_match_closed_form():
    obj = SDFObject("s", "s", [Part("ball", "sphere", (0.3,), (0.05, 0.0, -0.1))])
    pts, occ, sdf = sample_occupancy(obj, 4000, 1000, 0.02, _gen())
    dist = (pts - torch.tensor([0.05, 0.0, -0.1])).norm(dim=-1)
    assert pts.shape == (5000, 3) and occ.dtype == torch.bool and sdf.shape == (5000,)
    assert torch.allclose(sdf, dist - 0.3, atol=1e-6)
    assert torch.equal(occ, dist < 0.3)
    assert bool((pts[:4000].abs() <= HALF_EXTENT).all())


def test_occupancy_is_sdf_sign_and_near_points_straddle_surface():
    obj = make_object("chair", "c", np.random.default_rng(0))
    pts, occ, sdf = sample_occupancy(obj, 2000, 2000, 0.01, _gen(1))
    assert torch.equal(occ, sdf < 0)
    near = sdf[2000:]
    assert 0.3 < (near < 0).float().mean().item() < 0.7
    assert near.abs().max().item() < 0.1


def test_jitter_sigma_sets_the_spread_of_sdf_near_a_large_sphere():
    obj = SDFObject("s", "s", [Part("ball", "sphere", (0.45,))])
    _, _, sdf = sample_occupancy(obj, 0, 4000, 0.01, _gen(2))
    assert sdf.std().item() == pytest.approx(0.01, rel=0.08)


def test_surface_points_lie_on_the_sphere():
    obj = SDFObject("s", "s", [Part("ball", "sphere", (0.25,), (0.1, 0.1, 0.0))])
    pts = surface_points(obj, 1000, _gen(3))
    radius = (pts - torch.tensor([0.1, 0.1, 0.0])).norm(dim=-1)
    assert pts.shape == (1000, 3)
    assert torch.allclose(radius, torch.full_like(radius, 0.25), atol=1e-4)


def test_surface_points_are_spread_by_area_on_a_box():
    # faces x = ±0.4 have area 2·(0.2·0.2) = 0.08 of the total 0.72
    obj = SDFObject("b", "b", [Part("box", "box", (0.4, 0.1, 0.1))])
    pts = surface_points(obj, 6000, _gen(4))
    on_end_faces = ((pts[:, 0].abs() - 0.4).abs() < 1e-4).float().mean().item()
    assert on_end_faces == pytest.approx(0.08 / 0.72, abs=0.02)
    assert bool((((pts.abs() / torch.tensor([0.4, 0.1, 0.1])).max(dim=-1).values - 1).abs() < 1e-3).all())


def test_surface_points_of_a_composite_object_are_exact_and_seeded():
    obj = make_object("lamp", "l", np.random.default_rng(5))
    a = surface_points(obj, 500, _gen(6))
    b = surface_points(obj, 500, _gen(6))
    assert torch.equal(a, b)
    assert obj.sdf(a).abs().max().item() < 1e-4


def test_bad_counts_are_rejected():
    obj = SDFObject("s", "s", [Part("ball", "sphere", (0.3,))])
    with pytest.raises(ValueError, match="n_uniform"):
        sample_occupancy(obj, 0, 0, 0.01, _gen())
    with pytest.raises(ValueError, match="sigma"):
        sample_occupancy(obj, 10, 0, -1.0, _gen())
    with pytest.raises(ValueError, match="n must be"):
        surface_points(obj, 0, _gen())
