"""Generation metrics against hand-computed values and closed forms; fields -> samples."""
import math

import numpy as np
import pytest
import torch

from nfws.config_files import repo_section
from nfws.mlora.generation import (GenerationConfig, chamfer_matrix, distribution_metrics,
                                  frechet_distance, gaussian_kernel, mmd, polynomial_kernel, render_images,
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

    cfg = GenerationConfig.from_dict({**repo_section("diffusion", "generation"), "grid_res": 24,
                                      "bound": 0.5, "level": 0.0, "n_points": 200})
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


def test_generation_table_puts_published_numbers_beside_ours(tmp_path):
    import json

    import pandas as pd

    from nfws.mlora.generation_tables import write_generation_table

    base = {"modality": "occupancy", "n_gen": 8, "n_ref": 6, "n_empty": 1, "fd": 0.5,
            "mmd_g": 0.1, "mmd_p": 1.0, "mmd_cd": 0.004, "cov": 0.5, "nna": 0.75,
            "extractor": "PointNet trained on shapes train labels (2 classes)"}
    paths = {}
    for key in ("mlp", "mlora_asym", "mlora_asym_no_encoder"):
        paths[key] = tmp_path / f"{key}.json"
        paths[key].write_text(json.dumps(base))
    df = write_generation_table(paths, "shapes", "ShapeNet-Multi", tmp_path / "t.csv",
                                tmp_path / "t.md", chamfer_scale=1e3)
    rows = pd.read_csv(tmp_path / "t.csv").set_index("representation")
    assert rows.loc["MLP", "FD (paper)"] == 0.117  # HyperDiffusion row of Table 3
    assert rows.loc["mLoRA-Asym", "mMD (paper)"] == 5.52
    assert rows.loc["mLoRA-Asym w/o layer encoder", "1-NNA % (paper)"] == 61.2  # Table 5
    assert rows.loc["mLoRA-Asym", "mMD"] == 4.0 and rows.loc["MLP", "COV %"] == 50.0
    assert len(df) == 3
    assert "PointNet trained on shapes" in (tmp_path / "t.md").read_text()
    paths["lora"] = tmp_path / "img.json"
    paths["lora"].write_text(json.dumps({**base, "modality": "image"}))
    with pytest.raises(ValueError, match="mixes modalities"):
        write_generation_table(paths, "shapes", "ShapeNet-Multi", tmp_path / "u.csv", tmp_path / "u.md")


def test_generate_and_evaluate_stage_on_a_stand_in_image_field(tmp_path):
    """Diffusion model -> samples -> images -> metrics JSON, with a tiny stand-in field whose
    colour is the sigmoid of the first three weights."""
    import json

    import pandas as pd

    from nfws.mlora.generation import evaluate_generation, generate
    from nfws.mlora.diffusion import train_diffusion
    from nfws.mlora.feature_extractors import train_feature_extractor
    from nfws.store import write_parquet, write_zarr
    from weight_shards import fake_weight_shard

    rng = np.random.default_rng(0)
    n = 24
    ids = np.array([f"o{i}" for i in range(n)])
    labels = np.arange(n) % 2
    layout = [{"name": "colour", "shape": [3], "role": "bias"}, {"name": "w", "shape": [2, 2], "role": "weight"}]
    weights = rng.normal(size=(n, 7)).astype(np.float32)
    weights[:, 0] += 3 * (labels * 2 - 1)
    fake_weight_shard(tmp_path / "w.zarr", weights, ids, layout)
    images = np.zeros((n, 8, 8, 3), np.uint8)
    images[..., 0] = (255 / (1 + np.exp(-weights[:, 0]))).astype(np.uint8)[:, None, None]
    write_zarr(tmp_path / "t.zarr", {"images": images, "object_ids": ids, "labels": labels},
               {"kind": "image"})
    write_parquet(pd.DataFrame({"object_id": ids, "class_name": "c", "class_index": 0,
                                "split": ["train"] * 16 + ["test"] * 8, "source": ""}),
                  tmp_path / "m.parquet")
    cfg = {**repo_section("diffusion", "model"), "hidden": 16, "depth": 1, "heads": 2, "steps": 3, "sampling_steps": 4,
           "device": "cpu"}
    ext_cfg = {**repo_section("diffusion", "feature_extractor"), "epochs": 2, "input_res": 8, "feat_dim": 4, "device": "cpu"}
    train_diffusion(tmp_path / "w.zarr", cfg, tmp_path / "d.pt", 0, tmp_path / "m.parquet")
    train_feature_extractor(tmp_path / "t.zarr", tmp_path / "m.parquet",
                            ext_cfg, tmp_path / "e.pt", 0)

    def instantiate(w):
        return lambda pts: torch.sigmoid(w[:, None, :3]).expand(-1, pts.shape[1], -1)

    gen_cfg = {**repo_section("diffusion", "generation"), "n_samples": 6, "resolution": 8, "instantiate_batch": 4}
    info = generate(tmp_path / "d.pt", instantiate, "image", gen_cfg, 3, tmp_path / "s.zarr",
                    tmp_path / "grid.png")
    assert info["n_samples"] == 6 and (tmp_path / "grid.png").stat().st_size > 0
    from nfws.store import read_zarr
    arrays, _ = read_zarr(tmp_path / "s.zarr")
    want = np.round(255 / (1 + np.exp(-arrays["weights"][:, 0])))
    np.testing.assert_allclose(arrays["images"][:, 4, 4, 0], want, atol=1)
    result = evaluate_generation(tmp_path / "s.zarr", tmp_path / "t.zarr", tmp_path / "m.parquet",
                                 tmp_path / "e.pt", tmp_path / "metrics.json", gen_cfg, ext_cfg)
    assert result["n_gen"] == 6 and result["n_ref"] == 8 and result["n_feature"] == 4
    assert json.loads((tmp_path / "metrics.json").read_text())["fd"] == pytest.approx(result["fd"])
    assert "ImageCNN" in result["extractor"] and result["classes"] == ["0", "1"]
    with pytest.raises(ValueError, match="modality"):
        generate(tmp_path / "d.pt", instantiate, "audio", gen_cfg, 3, tmp_path / "x.zarr")
