"""Targets stores record each instance's split and read back through one reader; the MLP
template comes from the train split."""
import numpy as np
import pandas as pd
import pytest
import torch

from nfws.data.images import write_images_store
from nfws.data.targets import (TargetStore, build_image_targets, build_shape_targets,
                               load_targets, read_target_store, split_ground_truth,
                               write_target_store)
from nfws.mlora.train import fit_params, make_representation, shared_init, starting_params
from nfws.store import write_parquet, write_zarr
from hand_built import tiny_lora_fit

FIT = tiny_lora_fit(steps=6, points=16, log_every=3, mlp_template_init=True, mlp_hidden=6)


def _images_store(tmp_path, n=4):
    rng = np.random.default_rng(0)
    ids = np.array([f"o{i}" for i in range(n)])
    write_images_store(tmp_path / "images.zarr", rng.integers(0, 256, (n, 8, 8, 3)).astype(np.uint8),
                       ids, np.zeros(n), np.zeros((n, 0)), {"class_names": ["face"]})
    return tmp_path / "images.zarr", ids


def _manifest(path, ids, splits):
    """A one-class manifest of ``ids`` in ``splits``."""
    write_parquet(pd.DataFrame({"object_id": ids, "class_name": "c", "class_index": 0,
                                "split": splits, "source": ""}), path)
    return path


def test_image_targets_carry_manifest_splits_and_template_is_first_train_instance(tmp_path):
    store, ids = _images_store(tmp_path)
    _manifest(tmp_path / "m.parquet", ids, ["test", "test", "train", "train"])
    build_image_targets(store, tmp_path / "t.zarr", 4, None, tmp_path / "m.parquet")
    data = load_targets(tmp_path / "t.zarr")
    assert data.splits.tolist() == ["test", "test", "train", "train"]
    rep = make_representation("mlp", None, data, FIT)
    start, tid = starting_params(rep, data, 2, FIT, 0, torch.device("cpu"))
    assert tid == "o2"
    template, _ = fit_params(rep, shared_init(rep, 1, 0), data, [2], FIT, 0, torch.device("cpu"))
    for k in start:
        assert torch.equal(start[k][1], template[k][0])
    _manifest(tmp_path / "short.parquet", ids[:3], ["train"] * 3)
    with pytest.raises(ValueError, match="no split for 1 objects"):
        build_image_targets(store, tmp_path / "u.zarr", 4, None, tmp_path / "short.parquet")
    build_image_targets(store, tmp_path / "plain.zarr", 4)
    assert load_targets(tmp_path / "plain.zarr").splits is None


def test_shape_targets_carry_manifest_splits(tmp_path):
    from nfws.data.synthetic3d import generate_objects

    objects = generate_objects(["airplane"], 2, 0, tmp_path / "src")
    df = pd.DataFrame(objects, columns=["object_id", "class_name", "source"])
    df["class_index"], df["split"] = 0, ["val", "train"]
    write_parquet(df, tmp_path / "m.parquet")
    cfg = dict(n_uniform=64, n_surface=32, sigma=0.01, n_surface_gt=16)
    build_shape_targets(tmp_path / "m.parquet", tmp_path / "t.zarr", cfg, seed=0)
    data = load_targets(tmp_path / "t.zarr")
    assert data.splits.tolist() == ["val", "train"]
    assert data.points.shape == (2, 96, 3) and data.surface.shape == (2, 16, 3)


def test_base_field_learns_only_from_the_train_split(tmp_path):
    from nfws.mlora.base_field import train_base_field

    store, ids = _images_store(tmp_path)
    _manifest(tmp_path / "m.parquet", ids, ["train", "test", "train", "test"])
    build_image_targets(store, tmp_path / "t.zarr", 4, None, tmp_path / "m.parquet")
    cfg = dict(d_z=4, mapping_layers=1, mapping_width=8, n_blocks=1, width=8, enc_width=8,
               omega0=4.0, stages=[dict(steps=2, batch=8, points=8, lr=1e-3)], lambda_r=1e-4,
               ema_decay=0.9, latent_init_std=0.01, checkpoint_every=100, curve_every=100)
    train_base_field(tmp_path / "t.zarr", cfg, tmp_path / "base.pt", seed=0,
                     device=torch.device("cpu"))
    ck = torch.load(tmp_path / "base.pt", weights_only=True)
    assert ck["object_ids"] == ["o0", "o2"] and ck["latents"].shape == (2, 4)
    # replacing the held-out images changes nothing the base field learns
    images = (load_targets(tmp_path / "t.zarr").images.numpy() * 255).round().astype(np.uint8)
    images[[1, 3]] = 255 - images[[1, 3]]
    write_zarr(tmp_path / "t2.zarr", {"images": images, "object_ids": ids,
                                      "labels": np.zeros(4, np.int64),
                                      "splits": np.array(["train", "test", "train", "test"])},
               attrs={"kind": "image"})
    train_base_field(tmp_path / "t2.zarr", cfg, tmp_path / "base2.pt", seed=0,
                     device=torch.device("cpu"))
    ck2 = torch.load(tmp_path / "base2.pt", weights_only=True)
    assert all(torch.equal(ck["state"][k], ck2["state"][k]) for k in ck["state"])
    assert torch.equal(ck["latents"], ck2["latents"])


def test_target_store_round_trip_and_split_ground_truth(tmp_path):
    rng = np.random.default_rng(1)
    ids = np.array([f"s{i}" for i in range(4)])
    store = TargetStore("occupancy", {
        "points": rng.normal(size=(4, 6, 3)).astype(np.float32),
        "occupancy": rng.integers(0, 2, (4, 6)).astype(np.uint8),
        "surface": rng.normal(size=(4, 5, 3)).astype(np.float32), "object_ids": ids,
        "labels": np.array([0, 1, 1, 0]), "splits": np.array(["train", "test", "test", "val"])},
        {"class_names": ["a", "b"]})
    write_target_store(tmp_path / "t.zarr", store)
    back = read_target_store(tmp_path / "t.zarr")
    assert back.kind == "occupancy" and back.class_names == ["a", "b"]
    assert set(back.arrays) == set(store.arrays)
    for name, array in store.arrays.items():
        assert np.array_equal(back.arrays[name], array), name
    light = read_target_store(tmp_path / "t.zarr", with_arrays=False)
    assert set(light.arrays) == {"object_ids", "labels", "splits"}
    _manifest(tmp_path / "m.parquet", ids, ["train", "test", "test", "val"])
    kind, truth, labels = split_ground_truth(tmp_path / "t.zarr", tmp_path / "m.parquet", "test")
    assert kind == "occupancy" and np.array_equal(truth, store.arrays["surface"][1:3])
    assert labels.tolist() == [1, 1]
    with pytest.raises(ValueError, match=r"m\.parquet: 1 of the 4 objects of .*t\.zarr are in "
                                         r"split 'val'; need >= 2"):
        split_ground_truth(tmp_path / "t.zarr", tmp_path / "m.parquet", "val")


def test_target_store_missing_array_or_unknown_kind_is_named(tmp_path):
    write_zarr(tmp_path / "nosurface.zarr", {"points": np.zeros((1, 2, 3), np.float32),
                                             "occupancy": np.zeros((1, 2), np.uint8),
                                             "object_ids": np.array(["a"]),
                                             "labels": np.zeros(1, np.int64)},
               attrs={"kind": "occupancy"})
    with pytest.raises(ValueError, match=r"nosurface\.zarr: missing arrays \['surface'\]"):
        read_target_store(tmp_path / "nosurface.zarr")
    write_zarr(tmp_path / "audio.zarr", {"object_ids": np.array(["a"])}, attrs={"kind": "audio"})
    with pytest.raises(ValueError, match=r"audio\.zarr: attrs\['kind'\] is 'audio'"):
        load_targets(tmp_path / "audio.zarr")
