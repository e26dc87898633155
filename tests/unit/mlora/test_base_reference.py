"""The base field's reference rows: training-latent and latent-only-fit scores, the table."""
import math

import numpy as np
import pytest
import torch

from hand_built import random_image_targets
from nfws.data.targets import load_targets, pixel_grid
from nfws.mlora.base_field import load_base, train_base_field
from nfws.mlora.base_reference import (ATTRS, BaseReference, base_reference,
                                       read_base_reference, write_base_reference)
from nfws.mlora.train import fit_params, shared_init
from nfws.mlora.models import latent_on_base
from nfws.store import write_zarr
from weight_shards import fake_weight_shard
from hand_built import tiny_lora_fit

CPU = torch.device("cpu")
BASE = dict(d_z=4, mapping_layers=1, mapping_width=8, n_blocks=1, width=8, enc_width=8,
            omega0=4.0, stages=[dict(steps=4, batch=4, points=16, lr=1e-3)], lambda_r=1e-4,
            ema_decay=0.9, latent_init_std=0.5, checkpoint_every=100, curve_every=2)
FIT = tiny_lora_fit(steps=6, log_every=2)
SPLITS = np.array(["train", "test", "train", "val", "train", "test"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("ref")
    imgs = random_image_targets(d / "t.zarr", 6, 5, splits=SPLITS)
    train_base_field(d / "t.zarr", BASE, d / "base.pt", seed=0, device=CPU)
    return d, imgs


def hand_psnr(model, z: torch.Tensor, image: np.ndarray) -> float:
    """10·log10(1 / MSE) of the base at latent z against the uint8 image, written out."""
    coords = pixel_grid(image.shape[0]).unsqueeze(0)
    with torch.no_grad():
        pred = model(coords, z.reshape(1, -1))[0].clamp(0, 1).double()
    truth = torch.from_numpy(image.reshape(-1, 3)).double() / 255
    return 10 * math.log10(1 / float((pred - truth).pow(2).mean()))


def test_latent_representation_is_the_base_at_its_latent_and_fits_only_z(trained):
    d, _ = trained
    base = load_base(d / "base.pt")
    model = base["model"]
    z0 = base["latents"].mean(0)
    torch.testing.assert_close(base["latent"], z0)          # 'mean' = mean training latent
    rep = latent_on_base(model, z0)
    assert rep.n_params == rep.n_trainable == 4
    start = shared_init(rep, 3, seed=0)
    torch.testing.assert_close(start["z"], z0.expand(3, -1))
    x = torch.rand(3, 7, 2) * 2 - 1
    z = torch.randn(3, 4)
    torch.testing.assert_close(rep.forward({"z": z}, x), model(x, z))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    targets = load_targets(d / "t.zarr")
    fitted, curve = fit_params(rep, start, targets, [1, 5, 3], FIT, 0, CPU)
    assert fitted["z"].shape == (3, 4) and not torch.allclose(fitted["z"], start["z"])
    assert curve.shape == (3, 4)                             # steps 0, 2, 4, 5
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_reference_scores_match_hand_computed_psnr(trained, tmp_path):
    d, imgs = trained
    info = base_reference(d / "base.pt", d / "t.zarr", FIT, tmp_path / "ref.zarr", 0, CPU)
    ref = read_base_reference(tmp_path / "ref.zarr")
    base = load_base(d / "base.pt")
    # training latents: the three train-split instances, in the checkpoint's order
    assert list(ref.train_object_ids) == ["o0", "o2", "o4"]
    for k, oid in enumerate(ref.train_object_ids):
        want = hand_psnr(base["model"], base["latents"][k], imgs[int(oid[1:])])
        assert ref.train_score[k] == pytest.approx(want, abs=1e-3)
    # latent-only fit: the two test-split instances (never the val one)
    assert list(ref.test_object_ids) == ["o1", "o5"]
    for k, oid in enumerate(ref.test_object_ids):
        z = torch.from_numpy(ref.test_latents[k])
        want = hand_psnr(base["model"], z, imgs[int(oid[1:])])
        assert ref.test_score[k] == pytest.approx(want, abs=1e-3)
    assert ref.attrs["n_params"] == 4 and ref.attrs["metric"] == "psnr_db"
    assert ref.attrs["schedule"] == {"steps": 6, "points": 24, "lr_start": 1e-2, "lr_end": 1e-5}
    assert info["n_train"] == 3 and info["n_test"] == 2
    assert not (tmp_path / "ref.zarr.progress.pt").exists()


def test_training_curve_scores_every_snapshot_and_ends_at_the_final_field(trained, tmp_path):
    """curve_every 2 over 4 steps: snapshots after steps 2 and 4. The last one is the saved
    EMA field at the saved latents, so its score is the mean hand-computed PSNR of the
    first two training instances (as many as the test split has); the first is an earlier
    field and scores otherwise."""
    d, imgs = trained
    base_reference(d / "base.pt", d / "t.zarr", FIT, tmp_path / "ref.zarr", 0, CPU)
    ref = read_base_reference(tmp_path / "ref.zarr")
    base = load_base(d / "base.pt")
    assert list(ref.curve_step) == [2, 4]
    seconds = ref.curve_cpu_seconds
    assert 0 <= seconds[0] <= seconds[1]
    want = np.mean([hand_psnr(base["model"], base["latents"][k], imgs[int(oid[1:])])
                    for k, oid in enumerate(["o0", "o2"])])
    assert ref.curve_score[1] == pytest.approx(want, abs=1e-3)
    assert ref.curve_score[0] != pytest.approx(want, abs=1e-3)


def test_a_fit_that_cannot_move_scores_the_mean_latent(trained, tmp_path):
    d, imgs = trained
    frozen = {**FIT, "lr_start": 1e-30, "lr_end": 1e-30}
    base_reference(d / "base.pt", d / "t.zarr", frozen, tmp_path / "ref.zarr", 0, CPU)
    ref = read_base_reference(tmp_path / "ref.zarr")
    base = load_base(d / "base.pt")
    z_mean = base["latents"].mean(0)
    for k, oid in enumerate(ref.test_object_ids):
        assert ref.test_score[k] == pytest.approx(
            hand_psnr(base["model"], z_mean, imgs[int(oid[1:])]), abs=1e-3)


def test_missing_splits_or_instances_are_named(trained, tmp_path):
    d, imgs = trained
    write_zarr(tmp_path / "nosplit.zarr", {"images": imgs, "object_ids": np.array(
        [f"o{i}" for i in range(6)]), "labels": np.zeros(6, np.int64)}, attrs={"kind": "image"})
    with pytest.raises(ValueError, match=r"nosplit\.zarr.*no splits"):
        base_reference(d / "base.pt", tmp_path / "nosplit.zarr", FIT, tmp_path / "r.zarr", 0, CPU)
    write_zarr(tmp_path / "other.zarr", {"images": imgs, "object_ids": np.array(
        [f"p{i}" for i in range(6)]), "labels": np.zeros(6, np.int64), "splits": SPLITS},
        attrs={"kind": "image"})
    with pytest.raises(ValueError, match=r"base\.pt: base field written for another dataset: object_ids has 3"):
        base_reference(d / "base.pt", tmp_path / "other.zarr", FIT, tmp_path / "r.zarr", 0, CPU)
    assert not (tmp_path / "r.zarr").exists()


# ----- the table ----------------------------------------------------------------------
def fake_shard(path, kind, ids, scores, n_params, n_trainable):
    fake_weight_shard(path, np.zeros((len(ids), 2)), ids, score=scores, kind=kind,
                      n_params=n_params, n_trainable=n_trainable)


def fake_reference(path, train, test, n_base=1234):
    """A base reference with the given {object id: score} measurements and empty curves."""
    empty = np.zeros(0, np.float32)
    ref = BaseReference(
        train_object_ids=np.array(list(train)),
        train_score=np.array(list(train.values()), np.float32),
        test_object_ids=np.array(list(test)), test_score=np.array(list(test.values()), np.float32),
        test_latents=np.zeros((len(test), 4), np.float32),
        test_loss_curve=np.zeros((len(test), 1), np.float32), curve_step=empty.astype(np.int64),
        curve_cpu_seconds=empty, curve_score=empty,
        attrs={**dict.fromkeys(ATTRS), "n_params": 4, "n_base_params": n_base,
               "test_split": "test", "start_latent": "mean",
               "schedule": {"steps": 6, "points": 24, "lr_start": 0.01, "lr_end": 1e-5}})
    write_base_reference(path, ref)
    return ref


def test_base_reference_round_trip_and_missing_parts_are_named(tmp_path):
    ref = fake_reference(tmp_path / "ref.zarr", {"a": 1.0, "b": 2.0}, {"c": 3.0})
    back = read_base_reference(tmp_path / "ref.zarr")
    assert back.attrs == {"nfws_version": back.attrs["nfws_version"], **ref.attrs}
    for name in ("train_object_ids", "train_score", "test_latents", "curve_step"):
        assert np.array_equal(getattr(back, name), getattr(ref, name)), name
    with pytest.raises(ValueError, match=r"x\.zarr: base-reference attrs lack \['schedule'\]"):
        write_base_reference(tmp_path / "x.zarr", BaseReference(
            **{**ref.__dict__, "attrs": {k: v for k, v in ref.attrs.items() if k != "schedule"}}))
    write_zarr(tmp_path / "part.zarr", {"train_object_ids": ref.train_object_ids,
                                        "train_score": ref.train_score}, ref.attrs)
    with pytest.raises(ValueError, match=r"part\.zarr: missing arrays \['test_object_ids'"):
        read_base_reference(tmp_path / "part.zarr")


def test_table_has_reference_rows_first_and_test_means_on_the_same_instances(tmp_path):
    from nfws.mlora.evaluate import reconstruction_table

    ids = ["a", "b", "c", "d"]
    fake_shard(tmp_path / "mlp.zarr", "mlp", ids, [20.0, 22.0, 30.0, 34.0], 2061, 2061)
    fake_shard(tmp_path / "mlora.zarr", "mlora_asym", ids, [25.0, 27.0, 31.0, 35.0], 2124, 2000)
    fake_shard(tmp_path / "s.zarr", "mlora_asym", ids, [0.01, np.nan, 0.03, 0.05], 2116, 1990)
    fake_reference(tmp_path / "ref_f.zarr", {"a": 24.0, "b": 26.0}, {"c": 18.0, "d": 19.0})
    fake_reference(tmp_path / "ref_s.zarr", {"a": 0.02, "b": 0.04}, {"b": 0.08, "d": np.nan})
    df = reconstruction_table({"mlp": [tmp_path / "mlp.zarr"], "mlora_asym": [tmp_path / "mlora.zarr"]},
                              {"mlora_asym": [tmp_path / "s.zarr"]},
                              tmp_path / "r.csv", tmp_path / "r.md",
                              image_base=tmp_path / "ref_f.zarr", shape_base=tmp_path / "ref_s.zarr")
    t = df.set_index("representation")
    assert list(df["representation"][:2]) == ["base (training latents)", "base (latent-only fit)"]
    train, fit = t.loc["base (training latents)"], t.loc["base (latent-only fit)"]
    assert train["psnr"] == pytest.approx(25.0) and np.isnan(train["psnr_test"])
    assert fit["psnr"] == pytest.approx(18.5) and fit["psnr_test"] == pytest.approx(18.5)
    assert train["evaluated_on"] == "train split" and fit["evaluated_on"] == "test split"
    assert fit["psnr_n_params"] == 4 and fit["n_images"] == 2
    # shapes: training-latent CD mean (0.02 + 0.04) / 2 × 100; the fit's NaN is an empty mesh
    assert train["cd_mean_x1e-2"] == pytest.approx(3.0)
    assert fit["cd_mean_x1e-2"] == pytest.approx(8.0) and fit["n_empty_mesh"] == 1
    mlp, mlora = t.loc["MLP"], t.loc["mLoRA-Asym"]
    assert mlp["psnr"] == pytest.approx(26.5) and mlp["psnr_test"] == pytest.approx(32.0)
    assert mlora["psnr_test"] == pytest.approx(33.0)
    assert (mlp["psnr_n_params"], mlp["psnr_params"]) == (2061, 2061)
    assert (mlora["psnr_n_params"], mlora["psnr_params"]) == (2124, 2000)
    # shapes test ids are b and d; b has no mesh, so the test mean is d's alone
    assert mlora["cd_mean_test_x1e-2"] == pytest.approx(5.0)
    assert mlora["cd_mean_x1e-2"] == pytest.approx(3.0) and mlora["cd_n_params"] == 2116
    md = (tmp_path / "r.md").read_text()
    assert "base (latent-only fit)" in md
    assert ("faces: base field of 1,234 shared frozen parameters (not counted in params); "
            "training latents of its 2 training instances; latent-only fit of the 4 latent "
            "entries of each of the 2 test-split instances from the mean training latent, "
            "6 steps x 24 points, LR 0.01 -> 1e-05 (cosine)") in md


def test_table_without_reference_has_no_base_rows(tmp_path):
    from nfws.mlora.evaluate import reconstruction_table

    fake_shard(tmp_path / "mlp.zarr", "mlp", ["a", "b"], [20.0, 22.0], 10, 10)
    df = reconstruction_table({"mlp": [tmp_path / "mlp.zarr"]}, {}, tmp_path / "r.csv",
                              tmp_path / "r.md")
    assert df["representation"].iloc[0] == "MLP" and np.isnan(df["psnr_test"].iloc[0])
