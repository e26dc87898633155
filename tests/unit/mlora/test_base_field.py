"""A base-field file of another config or dataset is refused, naming the file and the key."""
import numpy as np
import pytest
import torch

from hand_built import random_image_targets
from nfws.data.targets import load_targets
from nfws.mlora.base_field import load_base, train_base_field
from nfws.mlora.train import fit_instances, load_fitted
from nfws.store import load_torch, save_torch, write_zarr
from hand_built import tiny_lora_fit

CPU = torch.device("cpu")
BASE = dict(d_z=4, mapping_layers=1, mapping_width=8, n_blocks=1, width=8, enc_width=8,
            omega0=4.0, stages=[dict(steps=2, batch=4, points=16, lr=1e-3)], lambda_r=1e-4,
            ema_decay=0.9, latent_init_std=0.5, checkpoint_every=100, curve_every=2)
FIT = tiny_lora_fit(steps=2, log_every=1, mask_seed=0, omega0=4.0, n_chamfer=20)


def image_store(path, prefix="o"):
    random_image_targets(path, 4, 5, prefix=prefix)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("checks")
    faces = image_store(d / "faces.zarr")
    pts = np.random.default_rng(1).random((4, 40, 3)).astype(np.float32) - 0.5
    write_zarr(d / "shapes.zarr", {"points": pts, "occupancy": (pts[..., 0] > 0).astype(np.uint8),
                                   "surface": pts[:, :20], "object_ids": np.array(
                                       [f"o{i}" for i in range(4)]),
                                   "labels": np.zeros(4, np.int64)}, attrs={"kind": "occupancy"})
    train_base_field(faces, BASE, d / "base.pt", seed=0, device=CPU)
    return d


def test_same_config_and_targets_load(files):
    base = load_base(files / "base.pt", "mean", dict(BASE), load_targets(files / "faces.zarr"))
    assert base["train_cfg"] == BASE and len(base["weights"]) == 4


@pytest.mark.parametrize("key, value, message", [
    ("width", 16, "width = 8 in the file, 16 in this run's lora.base"),
    ("d_z", 6, "d_z = 4 in the file, 6 in this run's lora.base"),
    ("omega0", 32.0, "omega0 = 4.0 in the file, 32.0 in this run's lora.base"),
])
def test_another_config_is_refused_naming_file_and_key(files, key, value, message):
    with pytest.raises(ValueError, match=r"base\.pt: base field written under another "
                                         r"config: " + message.replace(".", r"\.")):
        load_base(files / "base.pt", "mean", {**BASE, key: value})


def test_another_dataset_is_refused(files):
    with pytest.raises(ValueError, match=r"base\.pt: base field written for other targets: "
                                         r"target_kind = 'image' in the file, 'occupancy'.*"
                                         r"coord_dim = 2 in the file, 3.*out_dim = 3 in the file, 1"):
        load_base(files / "base.pt", "mean", dict(BASE), load_targets(files / "shapes.zarr"))
    other = image_store(files / "other_faces.zarr", prefix="p")
    with pytest.raises(ValueError, match=r"base\.pt: base field written for another dataset: "
                                         r"object_ids has 4 training instances the targets lack"):
        load_base(files / "base.pt", "mean", dict(BASE), load_targets(other))


def test_file_without_recorded_config_is_refused_when_checked(files, tmp_path):
    ck = load_torch(files / "base.pt")
    del ck["train_cfg"]
    save_torch(ck, tmp_path / "old.pt")
    load_base(tmp_path / "old.pt")                               # unchecked readers still work
    with pytest.raises(ValueError, match=r"old\.pt: the base field records no config"):
        load_base(tmp_path / "old.pt", "mean", dict(BASE))


def test_fits_refuse_a_base_of_another_config_and_reload_checks_it(files, tmp_path):
    faces = files / "faces.zarr"
    with pytest.raises(ValueError, match=r"base\.pt: .*n_blocks = 1 in the file, 2"):
        fit_instances("mlora", files / "base.pt", faces, FIT, tmp_path / "x.zarr", 0,
                      device=CPU, base_cfg={**BASE, "n_blocks": 2})
    assert not (tmp_path / "x.zarr").exists()
    with pytest.raises(ValueError, match=r"base\.pt: base field written for other targets"):
        fit_instances("lora", files / "base.pt", files / "shapes.zarr", FIT,
                      tmp_path / "y.zarr", 0, device=CPU)
    # the MLP kinds never read the base field
    fit_instances("mlp", files / "base.pt", faces, FIT, tmp_path / "m.zarr", 0, device=CPU,
                  base_cfg={**BASE, "n_blocks": 2})
    fit_instances("mlora", files / "base.pt", faces, FIT, tmp_path / "ok.zarr", 0, device=CPU,
                  base_cfg=dict(BASE))
    load_fitted([tmp_path / "ok.zarr"])
    # the base retrained under another config after the fit: reloading the shard refuses it
    train_base_field(faces, {**BASE, "width": 12}, tmp_path / "base.pt", seed=0, device=CPU)
    with pytest.raises(ValueError, match=r"base\.pt: base field written under another config: "
                                         r"width = 12 in the file, 8"):
        load_fitted([tmp_path / "ok.zarr"], tmp_path / "base.pt")
