"""Feature extractors: trained on the training split only, reloadable, TorchScript input."""
import numpy as np
import pandas as pd
import pytest
import torch

from nfws.data.targets import TargetStore, write_target_store
from nfws.config_files import repo_section
from nfws.mlora.feature_extractors import (load_extractor,
                                            train_feature_extractor)
from nfws.store import save_torch, write_parquet, write_zarr


def manifest(tmp_path, ids, splits):
    write_parquet(pd.DataFrame({"object_id": ids, "class_name": "c", "class_index": 0,
                                "split": splits, "source": ""}), tmp_path / "manifest.parquet")
    return tmp_path / "manifest.parquet"


def surface_targets(path, surface, ids, labels):
    """An occupancy targets store whose ground truth is ``surface`` (one sample point each)."""
    n = len(ids)
    write_target_store(path, TargetStore("occupancy", {
        "points": np.zeros((n, 1, 3), np.float32), "occupancy": np.zeros((n, 1), np.uint8),
        "surface": surface, "object_ids": ids, "labels": labels}, {}))
    return path


@pytest.fixture
def image_targets(tmp_path):
    rng = np.random.default_rng(0)
    n = 40
    labels = np.arange(n) % 2
    images = rng.integers(0, 60, size=(n, 16, 16, 3)).astype(np.uint8)
    images[labels == 0, :, :, 0] += 180  # class 0 red, class 1 blue
    images[labels == 1, :, :, 2] += 180
    ids = np.array([f"f{i}" for i in range(n)])
    write_zarr(tmp_path / "targets.zarr", {"images": images, "object_ids": ids, "labels": labels},
               {"kind": "image", "resolution": 16})
    m = manifest(tmp_path, ids, np.where(np.arange(n) < 30, "train", "test"))
    return tmp_path / "targets.zarr", m, images, labels


CFG = {**repo_section("diffusion", "feature_extractor"), "epochs": 8, "batch_size": 10, "input_res": 16, "feat_dim": 8, "lr": 3e-3, "device": "cpu"}


def test_image_extractor_learns_classes_from_train_split_and_reloads(image_targets, tmp_path):
    targets, man, images, labels = image_targets
    info = train_feature_extractor(targets, man, CFG, tmp_path / "ext.pt", seed=0)
    assert info["n_train"] == 30 and info["n_classes"] == 2 and info["arch"] == "image_cnn"
    assert info["train_accuracy"] >= 0.9
    ext = load_extractor(tmp_path / "ext.pt", CFG)
    f = ext.features(images[30:])
    assert f.shape == (10, 8) and np.array_equal(f, load_extractor(tmp_path / "ext.pt", CFG).features(images[30:]))
    assert "ImageCNN" in ext.name and "train" in ext.name
    # held-out features separate the two colours: class means further apart than spread
    f0, f1 = f[labels[30:] == 0], f[labels[30:] == 1]
    assert np.linalg.norm(f0.mean(0) - f1.mean(0)) > f0.std(0).mean() + f1.std(0).mean()


def test_point_extractor_trains_on_surface_points(tmp_path):
    g = torch.Generator().manual_seed(0)
    n, m = 24, 128
    labels = np.arange(n) % 2
    sphere = torch.randn(n, m, 3, generator=g)
    sphere = 0.4 * sphere / sphere.norm(dim=-1, keepdim=True)
    line = torch.zeros(n, m, 3)
    line[..., 0] = torch.rand(n, m, generator=g) - 0.5
    surface = torch.where(torch.from_numpy(labels == 0).view(-1, 1, 1), sphere, line).numpy()
    ids = np.array([f"s{i}" for i in range(n)])
    surface_targets(tmp_path / "t.zarr", surface, ids, labels + 3)
    man = manifest(tmp_path, ids, ["train"] * 16 + ["test"] * 8)
    info = train_feature_extractor(tmp_path / "t.zarr", man, {**CFG, "n_points": 64, "epochs": 15},
                                   tmp_path / "p.pt", seed=1)
    assert info["arch"] == "pointnet" and info["n_train"] == 16 and info["train_accuracy"] >= 0.9
    ext = load_extractor(tmp_path / "p.pt", CFG)
    assert ext.features(surface[16:]).shape == (8, 8) and "PointNet" in ext.name


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_extractor_gets_clip_style_normalised_images(tmp_path):
    class Tower(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))  # per-channel mean of the network input

    torch.jit.save(torch.jit.script(Tower()), str(tmp_path / "tower.ts"))
    images = np.zeros((2, 8, 8, 3), np.uint8)
    images[1] = 255
    cfg = {**CFG, "ts_input_res": 8, "ts_mean": [0.5, 0.5, 0.5], "ts_std": [0.25, 0.5, 1.0]}
    ext = load_extractor(tmp_path / "tower.ts", cfg, modality="image")
    want = np.array([[-2.0, -1.0, -0.5], [2.0, 1.0, 0.5]])  # (0 or 1 - 0.5) / std
    np.testing.assert_allclose(ext.features(images), want, atol=1e-6)
    assert "TorchScript" in ext.name
    with pytest.raises(ValueError, match="modality"):
        load_extractor(tmp_path / "tower.ts", cfg)


def test_bad_extractor_inputs(tmp_path, image_targets):
    targets, _, _, _ = image_targets
    with pytest.raises(FileNotFoundError):
        load_extractor(tmp_path / "none.pt", CFG)
    save_torch({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an nfws extractor"):
        load_extractor(tmp_path / "other.pt", CFG)
    ids = [f"f{i}" for i in range(40)]
    one_object = manifest(tmp_path, ids, ["train"] + ["test"] * 39)
    with pytest.raises(ValueError, match=r"1 of the 40 objects of .*targets\.zarr are in split "
                                         r"'train'; need >= 2"):
        train_feature_extractor(targets, one_object, CFG, tmp_path / "x.pt", seed=0)
    one_class = manifest(tmp_path, ids, ["train", "test"] * 20)   # train ids are all label 0
    with pytest.raises(ValueError, match=">= 2 classes"):
        train_feature_extractor(targets, one_class, {**CFG, "objective": "labels"},
                                tmp_path / "x.pt", seed=0)
    with pytest.raises(ValueError, match="feature_extractor.objective: must be one of"):
        train_feature_extractor(targets, one_class, {**CFG, "objective": "vae"},
                                tmp_path / "x.pt", seed=0)
    with pytest.raises(ValueError, match="config diffusion.feature_extractor: missing keys"):
        train_feature_extractor(targets, one_class, {"epoch": 3}, tmp_path / "x.pt", seed=0)


def _sphere_clouds(radii, m, seed):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(len(radii), m, 3, generator=g)
    return (u / u.norm(dim=-1, keepdim=True) * torch.tensor(radii).view(-1, 1, 1)).numpy()


def test_single_class_points_fall_back_to_an_autoencoder_that_encodes_size(tmp_path):
    radii = [0.15, 0.45] * 12
    surface = _sphere_clouds(radii, 96, 0)
    ids = np.array([f"s{i}" for i in range(24)])
    surface_targets(tmp_path / "t.zarr", surface, ids, np.zeros(24, np.int64))
    man = manifest(tmp_path, ids, ["train"] * 16 + ["test"] * 8)
    cfg = {**CFG, "n_points": 48, "epochs": 40, "batch_size": 8}
    info = train_feature_extractor(tmp_path / "t.zarr", man, cfg, tmp_path / "p.pt", seed=0)
    assert info["objective"] == "autoencoder" and "train_accuracy" not in info
    # a constant decoder output can do no better than the mean radius for both sizes:
    # CD >= 2 * (0.15 - 0.30)^2 = 0.045; the autoencoder must tell the sizes apart
    assert info["final_loss"] < 0.02
    ext = load_extractor(tmp_path / "p.pt", CFG)
    assert "autoencoder" in ext.name
    f = ext.features(surface[16:])
    small, large = f[::2], f[1::2]
    assert np.linalg.norm(small.mean(0) - large.mean(0)) > small.std(0).mean() + large.std(0).mean()
    state = torch.load(tmp_path / "p.pt", weights_only=True)
    assert state["n_classes"] == 0 and not any(k.startswith("head") for k in state["state_dict"])


def test_image_autoencoder_beats_the_mean_image(image_targets, tmp_path):
    targets, man, images, _ = image_targets
    cfg = {**CFG, "objective": "autoencoder", "epochs": 30}
    info = train_feature_extractor(targets, man, cfg, tmp_path / "ae.pt", seed=0)
    x = images[:30].astype(np.float64) / 255 * 2 - 1        # the training split, scaled
    mean_image_mse = ((x - x.mean(0)) ** 2).mean()
    assert info["objective"] == "autoencoder" and info["final_loss"] < 0.8 * mean_image_mse
    with pytest.raises(ValueError, match="multiple of 8"):
        train_feature_extractor(targets, man, {**cfg, "input_res": 12}, tmp_path / "x.pt", 0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_configured_checkpoint_is_recorded_and_used(image_targets, tmp_path):
    from nfws.mlora.feature_extractors import prepare_feature_extractor

    class Tower(torch.nn.Module):
        def forward(self, x):
            return x.amax(dim=(2, 3))

    targets, man, images, _ = image_targets
    torch.jit.save(torch.jit.script(Tower()), str(tmp_path / "tower.ts"))
    cfg = {**CFG, "checkpoint": str(tmp_path / "tower.ts"), "ts_input_res": 16,
           "ts_mean": [0.0, 0.0, 0.0], "ts_std": [1.0, 1.0, 1.0]}
    info = prepare_feature_extractor(targets, man, cfg, tmp_path / "ext.pt", seed=0)
    assert info == {"arch": "external", "name": "TorchScript tower.ts"}
    ext = load_extractor(tmp_path / "ext.pt", cfg)
    np.testing.assert_allclose(ext.features(images[:3]), images[:3].max(axis=(1, 2)) / 255,
                               atol=1e-6)
    assert ext.name == "TorchScript tower.ts"
    with pytest.raises(FileNotFoundError, match="feature_extractor.checkpoint"):
        prepare_feature_extractor(targets, man, {**cfg, "checkpoint": str(tmp_path / "no.ts")},
                                  tmp_path / "ext.pt", seed=0)
    info = prepare_feature_extractor(targets, man, CFG, tmp_path / "ours.pt", seed=0)
    assert info["arch"] == "image_cnn"


def test_open_clip_file_needs_the_package_and_is_built_by_it(image_targets, tmp_path,
                                                            monkeypatch):
    import sys
    import types

    from nfws.mlora.feature_extractors import load_external_extractor

    _, _, images, _ = image_targets
    (tmp_path / "clip.bin").write_bytes(b"not read by us")
    cfg = {**CFG, "open_clip_model": "ViT-B-32", "ts_input_res": 16,
           "ts_mean": [0.5, 0.5, 0.5], "ts_std": [0.5, 0.5, 0.5]}
    monkeypatch.setitem(sys.modules, "open_clip", None)       # import open_clip fails
    with pytest.raises(ImportError, match="open_clip package is not installed"):
        load_external_extractor(tmp_path / "clip.bin", cfg, "image")
    with pytest.raises(ValueError, match="open_clip_model"):
        load_external_extractor(tmp_path / "clip.bin", {**cfg, "open_clip_model": None}, "image")

    calls = {}

    class FakeClip(torch.nn.Module):
        def encode_image(self, x):
            return x.mean(dim=(2, 3))

    def create_model(name, pretrained=None, device=None):
        calls.update(name=name, pretrained=pretrained)
        return FakeClip()

    monkeypatch.setitem(sys.modules, "open_clip", types.SimpleNamespace(create_model=create_model))
    ext = load_external_extractor(tmp_path / "clip.bin", cfg, "image")
    assert calls == {"name": "ViT-B-32", "pretrained": str(tmp_path / "clip.bin")}
    want = (images[:2].astype(np.float64) / 255 - 0.5).mean(axis=(1, 2)) / 0.5
    np.testing.assert_allclose(ext.features(images[:2]), want, atol=1e-5)
    assert ext.name == "open_clip ViT-B-32 (clip.bin)"
    with pytest.raises(ValueError, match="embeds images"):
        load_external_extractor(tmp_path / "clip.bin", cfg, "occupancy")
