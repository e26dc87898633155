"""Generation metrics against hand-computed values and closed forms; fields -> samples."""
import math

import numpy as np
import pytest
import torch

from nfws.eval.generation import (chamfer_matrix, distribution_metrics, frechet_distance,
                                  gaussian_kernel, mmd, polynomial_kernel, render_images,
                                  sample_mesh, shape_metrics, surface_point_clouds,
                                  trace_sqrt_product)


def test_fd_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(0).normal(size=(50, 4))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)


def test_trace_sqrt_product_matches_2x2_closed_form():
    s1 = np.array([[2.0, 0.5], [0.5, 1.0]])
    s2 = np.array([[1.0, -0.3], [-0.3, 3.0]])
    m = s1 @ s2  # Tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)) for a 2x2 M with positive eigenvalues
    want = math.sqrt(np.trace(m) + 2 * math.sqrt(np.linalg.det(m)))
    assert trace_sqrt_product(s1, s2) == pytest.approx(want, rel=1e-10)


def test_fd_of_two_gaussians_matches_closed_form():
    rng = np.random.default_rng(1)
    n = 400_000
    p = rng.normal([0.0, 1.0], [1.0, 2.0], size=(n, 2))
    q = rng.normal([1.0, 1.0], [3.0, 2.0], size=(n, 2))
    # diagonal covariances: ||dmu||^2 + sum (s_p - s_q)^2 over standard deviations
    want = (1.0 + (1 - 3) ** 2 + 0.0) / 2
    assert frechet_distance(p, q) == pytest.approx(want, rel=0.02)


def test_mmd_kernels_by_hand_on_two_points():
    p, q = np.array([[0.0], [1.0]]), np.array([[2.0], [3.0]])
    # polynomial, gamma = 1/N_feature = 1: k = (xy + 1)^3
    within_p, within_q = 1.0, 343.0
    cross = (1 + 1 + 27 + 64) / 4
    assert mmd(p, q, polynomial_kernel) == pytest.approx(within_p + within_q - 2 * cross)
    # Gaussian, sigma = N_feature = 1: k = exp(-d^2 / 2)
    e = math.exp
    cross_g = (e(-2) + e(-4.5) + e(-0.5) + e(-2)) / 4
    assert mmd(p, q, gaussian_kernel) == pytest.approx(2 * e(-0.5) - 2 * cross_g)


def test_kernel_parameters_follow_feature_dimension():
    x, y = np.array([[1.0, 2.0]]), np.array([[3.0, -1.0]])
    assert polynomial_kernel(x, y)[0, 0] == pytest.approx((1 / 2 + 1) ** 3)  # x.y = 1, d = 2
    assert gaussian_kernel(x, y)[0, 0] == pytest.approx(math.exp(-13 / 8))  # sigma = 2


def test_distribution_metrics_invariant_to_a_shared_affine_rescale():
    rng = np.random.default_rng(2)
    gen, ref = rng.normal(size=(30, 5)) + 0.3, rng.normal(size=(40, 5))
    a = distribution_metrics(gen, ref)
    b = distribution_metrics(gen * 7.0 - 2.0, ref * 7.0 - 2.0)
    for key in ("fd", "mmd_g", "mmd_p"):
        assert a[key] == pytest.approx(b[key], rel=1e-9)
    assert a["fd"] > 0.01
    same = distribution_metrics(ref, ref)
    assert same["fd"] == pytest.approx(0.0, abs=1e-9)


def test_chamfer_by_hand():
    a = torch.tensor([[[0.0, 0.0, 0.0]]])
    b = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]])
    # a->b: min squared distance 1; b->a: mean(1, 4) = 2.5
    assert chamfer_matrix(a, b)[0, 0].item() == pytest.approx(3.5)


def line_clouds(xs):
    return torch.tensor([[[x, 0.0, 0.0]] for x in xs])


def test_mmd_cov_nna_on_hand_built_sets():
    gen, ref = line_clouds([0.0, 10.0]), line_clouds([1.0, 2.5, 20.0])
    # single-point clouds: CD = 2 (x - y)^2
    m = shape_metrics(gen, ref)
    assert m["mmd_cd"] == pytest.approx((2 * 1 + 2 * 6.25 + 2 * 100) / 3)
    assert m["cov"] == pytest.approx(2 / 3)  # gen 0 -> ref 1, gen 10 -> ref 2.5
    assert m["nna"] == pytest.approx(1 / 5)  # only ref 2.5 has its nearest neighbour in its own set


def test_identical_sets_cover_everything_and_separated_sets_give_nna_one():
    ref = line_clouds([0.0, 5.0, 9.0])
    assert shape_metrics(ref.clone(), ref)["cov"] == 1.0
    far = shape_metrics(line_clouds([100.0, 101.0]), line_clouds([0.0, 1.0]))
    assert far["nna"] == 1.0 and far["cov"] == 0.5


def test_sample_mesh_points_lie_on_the_triangle():
    verts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=np.float32)
    pts = sample_mesh(verts, np.array([[0, 1, 2]]), 500, torch.Generator().manual_seed(0))
    assert np.allclose(pts[:, 2], 0) and (pts[:, :2] >= -1e-6).all()
    assert (pts[:, 0] + pts[:, 1] <= 1 + 1e-6).all()


def test_surface_point_clouds_of_a_sphere_field_and_an_empty_field():
    def field(points):  # instance 0: sphere of radius 0.3; instance 1: nothing inside
        r = points.norm(dim=-1, keepdim=True)
        return torch.stack([0.3 - r[0], -1.0 - r[1]])

    cfg = {"grid_res": 24, "bound": 0.5, "level": 0.0, "n_points": 200}
    pts, empty = surface_point_clouds(field, 2, cfg, torch.Generator().manual_seed(0))
    assert empty.tolist() == [False, True]
    radius = np.linalg.norm(pts[0], axis=1)
    assert np.abs(radius - 0.3).max() < 0.02
    assert np.all(pts[1] == 0)


def test_render_images_uses_pixel_centres_row_major():
    def field(coords):  # red = x mapped to [0, 1], green = y mapped to [0, 1]
        return torch.stack([(coords[..., 0] + 1) / 2, (coords[..., 1] + 1) / 2,
                            torch.zeros_like(coords[..., 0])], -1)

    img = render_images(field, 1, 4)[0]
    # pixel (row 0, col 3): x = 0.75, y = -0.75 -> red 0.875, green 0.125
    assert tuple(img[0, 3]) == (round(0.875 * 255), round(0.125 * 255), 0)
    assert img[3, 0, 1] == round(0.875 * 255)
