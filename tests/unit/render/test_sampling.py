import math

import pytest
import torch

from nfws.render.sampling import carve_box, guided_intervals, ray_box_intersect, stratified_intervals


def test_ray_box_intersect_by_hand():
    origins = torch.tensor([[-2.0, 0.0, 0.0], [0.0, 0.0, 0.0], [-2.0, 5.0, 0.0], [-2.0, -2.0, 0.0]])
    d_diag = torch.tensor([1.0, 1.0, 0.0]) / math.sqrt(2)
    dirs = torch.stack([torch.tensor([1.0, 0, 0]), torch.tensor([0, 0, 1.0]),
                        torch.tensor([1.0, 0, 0]), d_diag])
    lo, hi = torch.full((3,), -1.0), torch.full((3,), 1.0)
    t_near, t_far, hit = ray_box_intersect(origins, dirs, lo, hi)
    # along +x from x=-2: enters at x=-1 (t=1), leaves at x=1 (t=3)
    assert t_near[0].item() == pytest.approx(1.0) and t_far[0].item() == pytest.approx(3.0)
    # from the centre: near clamps to 0, leaves at z=1
    assert t_near[1].item() == pytest.approx(0.0) and t_far[1].item() == pytest.approx(1.0)
    # y=5 never enters
    assert not hit[2] and t_near[2] == t_far[2]
    # diagonal from (-2,-2): enters at corner (-1,-1) t=sqrt2, leaves at (1,1) t=3 sqrt2
    assert t_near[3].item() == pytest.approx(math.sqrt(2), rel=1e-5)
    assert t_far[3].item() == pytest.approx(3 * math.sqrt(2), rel=1e-5)
    assert hit[[0, 1, 3]].all()


def test_stratified_samples_inside_sorted_and_midpoints():
    t_near = torch.tensor([0.5, 1.0, 2.0])
    t_far = torch.tensor([1.5, 4.0, 2.0])
    jitter = torch.rand(3, 8, generator=torch.Generator().manual_seed(0))
    starts, ends, points = stratified_intervals(t_near, t_far, 8, jitter)
    assert points.shape == (3, 8)
    assert (points >= t_near[:, None]).all() and (points <= t_far[:, None]).all()
    assert (points >= starts).all() and (points <= ends).all()
    assert (points[:, 1:] >= points[:, :-1]).all()
    assert torch.allclose((ends - starts).sum(-1), t_far - t_near)
    _, _, mid = stratified_intervals(t_near, t_far, 4)
    assert torch.allclose(mid[0], torch.tensor([0.625, 0.875, 1.125, 1.375]))


def test_stratified_jitter_places_points_inside_their_bins():
    # chord [0, 4] in two bins of 2: jitter 0.25 and 0.5 -> t = 0.5 and 2 + 1 = 3
    _, _, points = stratified_intervals(torch.tensor([0.0]), torch.tensor([4.0]), 2,
                                        torch.tensor([[0.25, 0.5]]))
    torch.testing.assert_close(points, torch.tensor([[0.5, 3.0]]))
    with pytest.raises(ValueError, match="jitter: shape"):
        stratified_intervals(torch.zeros(3), torch.ones(3), 2, torch.rand(3, 4))


def test_guided_intervals_by_hand():
    # chord [0, 4] in two bins of weight 3 and 1: cdf 0, 0.75, 1. Four intervals take a
    # quarter of the weight each: the first bin ([0, 2], 3/4 of it) holds three of them
    t_near, t_far = torch.tensor([0.0]), torch.tensor([4.0])
    starts, ends, mid = guided_intervals(t_near, t_far, 4, torch.tensor([[3.0, 1.0]]))
    torch.testing.assert_close(starts[0], torch.tensor([0.0, 2 / 3, 4 / 3, 2.0]))
    torch.testing.assert_close(ends[0], torch.tensor([2 / 3, 4 / 3, 2.0, 4.0]))
    # midpoints in weight: u = 1/8, 3/8, 5/8 -> t = u * 2 / 0.75; u = 7/8 -> 2 + 2 * (1/8) / (1/4)
    torch.testing.assert_close(mid[0], torch.tensor([1 / 3, 1.0, 5 / 3, 3.0]))


def test_guided_intervals_tile_the_chord_and_equal_weights_are_stratified():
    gen = torch.Generator().manual_seed(1)
    t_near = torch.rand(5, 7, generator=gen)
    t_far = t_near + torch.rand(5, 7, generator=gen) * 3
    weights = torch.rand(5, 7, 6, generator=gen) + 0.01
    starts, ends, points = guided_intervals(t_near, t_far, 9, weights, torch.rand(5, 7, 9, generator=gen))
    torch.testing.assert_close(starts[..., 0], t_near)
    torch.testing.assert_close(ends[..., -1], t_far)
    torch.testing.assert_close(starts[..., 1:], ends[..., :-1])
    assert (points >= starts).all() and (points <= ends).all() and (ends > starts).all()
    # equal weights: the same intervals and the same jittered points as stratified sampling
    ones = torch.ones_like(weights)
    jitter = torch.rand(5, 7, 9, generator=gen)
    for got, want in zip(guided_intervals(t_near, t_far, 9, ones, jitter),
                         stratified_intervals(t_near, t_far, 9, jitter)):
        torch.testing.assert_close(got, want)


def test_guided_intervals_refuse_a_bin_without_weight():
    with pytest.raises(ValueError, match="bin weights must be positive"):
        guided_intervals(torch.zeros(1), torch.ones(1), 4, torch.tensor([[1.0, 0.0]]))


def _sphere_views(radius, centre, n_views=6, res=32):
    """Analytic alpha masks of a sphere seen by cameras on a ring around the origin."""
    from nfws.data.cameras import pixel_rays

    c2ws, alphas = [], []
    f = 0.5 * res / math.tan(0.4)
    intr = torch.tensor([f, f, res / 2, res / 2])
    for i in range(n_views):
        az = 2 * math.pi * i / n_views
        eye = torch.tensor([2 * math.cos(az), 0.6, 2 * math.sin(az)])
        fwd = -eye / eye.norm()
        right = torch.linalg.cross(fwd, torch.tensor([0.0, 1.0, 0.0]))
        right = right / right.norm()
        up = torch.linalg.cross(right, fwd)
        c2w = torch.eye(4)
        c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, up, -fwd, eye
        jj, ii = torch.meshgrid(torch.arange(res) + 0.5, torch.arange(res) + 0.5, indexing="xy")
        o, d = pixel_rays(c2w, intr, torch.stack([jj, ii], -1))
        oc = o - centre
        b = (oc * d).sum(-1)
        disc = b**2 - ((oc * oc).sum(-1) - radius**2)
        alphas.append((disc > 0).float())
        c2ws.append(c2w)
    return torch.stack(alphas), torch.stack(c2ws), intr.expand(n_views, 4)


def test_carve_box_contains_sphere_and_shrinks():
    centre = torch.tensor([0.1, -0.05, 0.0])
    alpha, c2w, intr = _sphere_views(0.25, centre)
    box = carve_box(alpha, c2w, intr, bbox=0.7, resolution=32)
    lo, hi = box
    # conservative: the whole sphere is inside
    assert (lo <= centre - 0.25).all() and (hi >= centre + 0.25).all()
    # and the box is much smaller than the full [-0.7, 0.7]^3
    volume = (hi - lo).prod().item()
    assert volume < 0.4 * 1.4**3


def test_carve_box_empty_masks_fail():
    alpha, c2w, intr = _sphere_views(0.25, torch.zeros(3))
    with pytest.raises(ValueError, match="no occupied voxel"):
        carve_box(torch.zeros_like(alpha), c2w, intr, bbox=0.7)
