"""PSNR, Chamfer distance, marching cubes and the 3D target readers against closed forms."""
import math

import numpy as np
import pytest
import torch

from nfws.data.targets import read_mesh, read_shape, winding_number
from nfws.metrics import chamfer_distance, grid_points, mesh_vertices, psnr


def _directions(n, seed=0):
    u = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return u / u.norm(dim=1, keepdim=True)


def test_psnr_hand_made_pair():
    a = torch.zeros(1, 2, 2, 3)
    b = a.clone()
    b[0, 0, 0] = 0.5          # squared error 0.25 on 3 of 12 values → MSE 1/16
    assert torch.allclose(psnr(b, a), torch.tensor([10 * math.log10(16)]))
    assert torch.allclose(psnr(a + 2.0, a + 1.0), torch.tensor([float("inf")]))  # clamped


def test_chamfer_self_zero_and_scaled_sphere_closed_form():
    u = _directions(500)
    assert chamfer_distance(u * 0.3, u * 0.3) == 0.0
    # x_i = r u_i, y_j = s u_j: nearest of r u_i is s u_i at distance |r - s| (both ways)
    r, s = 0.3, 0.36
    assert chamfer_distance(u * r, u * s) == pytest.approx(2 * (r - s) ** 2, rel=1e-9)
    with pytest.raises(ValueError, match="empty"):
        chamfer_distance(u[:0], u)


def test_chamfer_is_the_brute_force_mean_of_squared_nearest_distances():
    gen = torch.Generator().manual_seed(1)
    x, y = torch.rand(300, 3, generator=gen), torch.rand(170, 3, generator=gen) * 1.3
    d2 = ((x.double()[:, None] - y.double()[None]) ** 2).sum(-1)
    expected = d2.min(1).values.mean() + d2.min(0).values.mean()
    assert chamfer_distance(x, y) == pytest.approx(float(expected), rel=1e-12)


def test_evaluate_field_is_one_call_cut_into_point_chunks(monkeypatch):
    import nfws.metrics as metrics

    calls = []
    weights = torch.randn(5, 3, 2, generator=torch.Generator().manual_seed(2))

    def field(p):                                  # a per-instance linear map, [B, n, 3] -> [B, n, 2]
        calls.append(p.shape[1])
        return torch.bmm(p, weights)

    points = torch.rand(23, 3, generator=torch.Generator().manual_seed(3))
    whole = torch.bmm(points.expand(5, -1, -1), weights)
    assert torch.allclose(metrics.evaluate_field(field, 5, points, 10, "cpu"), whole)
    assert calls == [10, 10, 3]
    calls.clear()
    monkeypatch.setattr(metrics, "CPU_EVAL_ROWS", 20)     # 20 pairs / 5 instances: 4 points a call
    assert torch.allclose(metrics.evaluate_field(field, 5, points, 10, "cpu"), whole)
    assert calls == [4] * 5 + [3]


def test_marching_cubes_of_sphere_logit_is_close_to_sphere():
    res, bound, r = 40, 0.6, 0.35
    logits = (r - grid_points(res, bound).norm(dim=1)).reshape(res, res, res).numpy()
    verts = mesh_vertices(logits, bound)
    radii = np.linalg.norm(verts, axis=1)
    assert np.abs(radii - r).max() < 2 * bound / (res - 1)
    assert mesh_vertices(np.ones((4, 4, 4)), bound) is None


def _cube_obj(path):
    v = [(x, y, z) for x in (0, 1) for y in (0, 1) for z in (0, 1)]
    quads = [(1, 3, 4, 2), (5, 6, 8, 7), (1, 2, 6, 5), (3, 7, 8, 4), (1, 5, 7, 3), (2, 4, 8, 6)]
    path.write_text("".join(f"v {x} {y} {z}\n" for x, y, z in v)
                    + "".join("f " + " ".join(map(str, q)) + "\n" for q in quads))


def test_winding_number_of_unit_cube(tmp_path):
    _cube_obj(tmp_path / "cube.obj")
    verts, faces = read_mesh(tmp_path / "cube.obj")
    assert faces.shape == (12, 3)
    pts = torch.tensor([[0.5, 0.5, 0.5], [0.1, 0.9, 0.2], [1.5, 0.5, 0.5], [-0.2, -0.2, -0.2],
                        [0.5, 0.5, 1.01]], dtype=torch.float64)
    w = winding_number(pts, verts, faces)
    assert torch.allclose(w.abs(), torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0],
                                                dtype=torch.float64), atol=1e-6)


def test_off_reader_and_mesh_shape_source(tmp_path):
    _cube_obj(tmp_path / "cube.obj")
    v, f = read_mesh(tmp_path / "cube.obj")
    off = tmp_path / "cube.off"
    off.write_text(f"OFF\n{len(v)} {len(f)} 0\n"
                   + "".join(f"{a} {b} {c}\n" for a, b, c in v.tolist())
                   + "".join(f"3 {a} {b} {c}\n" for a, b, c in f.tolist()))
    v2, f2 = read_mesh(off)
    assert torch.equal(v, v2) and torch.equal(f, f2)
    cfg = dict(n_uniform=300, n_surface=100, sigma=0.01, n_surface_gt=50)
    points, occ, surface = read_shape(off, cfg, torch.Generator().manual_seed(0))
    assert points.shape == (400, 3) and surface.shape == (50, 3)
    # normalised cube is [-0.5, 0.5]^3: occupancy is the box test
    inside = (np.abs(points) < 0.5).all(1)
    assert (occ == inside).mean() > 0.99
    assert np.allclose(np.abs(surface).max(1), 0.5, atol=1e-6)
    (tmp_path / "bad.obj").write_text("v 0 0 0\nf 1 2 3\n")
    with pytest.raises(ValueError, match="bad.obj"):
        read_mesh(tmp_path / "bad.obj")


def test_occupancy_network_folder_with_packbits(tmp_path):
    pts = np.random.default_rng(0).uniform(-0.5, 0.5, (20, 3)).astype(np.float16)
    occ = pts[:, 0] > 0
    np.savez(tmp_path / "points.npz", points=pts, occupancies=np.packbits(occ))
    np.savez(tmp_path / "pointcloud.npz", points=pts[:10])
    cfg = dict(n_uniform=10, n_surface=5, sigma=0.01, n_surface_gt=4)
    p, o, s = read_shape(tmp_path, cfg, torch.Generator().manual_seed(0))
    assert p.shape == (15, 3) and s.shape == (4, 3)
    assert np.array_equal(o, p[:, 0] > 0)
    with pytest.raises(ValueError, match="config asks for"):
        read_shape(tmp_path, dict(cfg, n_uniform=100), torch.Generator())
    with pytest.raises(ValueError, match="unknown 3D source"):
        read_shape(tmp_path / "x.ply", cfg, torch.Generator())
