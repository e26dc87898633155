"""The divergence criterion on hand-built cases, and the exploding learning rate on every
NeRF family and on a Track B representation: each diverged object fails the job by name,
or is dropped and listed under ``on_failure: drop``."""
import numpy as np
import pytest
import torch

from nfws.divergence import divergence_reasons
from nfws.config_files import repo_section
from hand_built import tiny_lora_fit

FALLING = np.array([[1.0, 0.5, 0.4, 0.3]])


def weights(*rms):
    """One object's tensors, each constant at the given RMS."""
    return {f"t{i}": torch.full((1, 4), float(r)) for i, r in enumerate(rms)}


def test_a_healthy_fit_passes():
    # largest starting RMS 0.1 (a table started near zero may grow past its own start)
    assert divergence_reasons(FALLING, weights(0.1, 1e-4), weights(0.3, 1.5), 20.0) == [None]


def test_growth_is_measured_against_the_objects_largest_starting_tensor():
    start = weights(0.1, 1e-4)
    assert divergence_reasons(FALLING, start, weights(0.1, 1.99), 20.0) == [None]
    (reason,) = divergence_reasons(FALLING, start, weights(0.1, 2.01), 20.0)
    assert "20.1x" in reason and "t1" in reason


def test_a_loss_that_rises_past_half_again_its_start_is_divergence():
    # end = mean of the last quarter of the logged values (here the last 2 of 8)
    exploding = np.array([[1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 1.4, 1.7]])   # tail 1.55 > 1.5
    noisy = np.array([[1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 1.3, 1.6]])       # tail 1.45: kept
    start, end = weights(0.1), weights(0.1)
    assert divergence_reasons(exploding, start, end, 20.0) == ["loss rose from 1 to 1.55"]
    assert divergence_reasons(noisy, start, end, 20.0) == [None]


def test_non_finite_loss_or_weights():
    nan_loss = np.array([[1.0, np.nan, 0.2]])
    assert divergence_reasons(nan_loss, weights(0.1), weights(0.1), 20.0) == ["non-finite loss"]
    assert divergence_reasons(FALLING, weights(0.1), weights(np.inf), 20.0) == ["non-finite weights"]


def test_objects_are_judged_one_by_one():
    curve = np.array([[1.0, 0.2], [1.0, 0.2], [1.0, 2.0]])
    start = {"w": torch.full((3, 5), 0.1)}
    end = {"w": torch.tensor([[0.2] * 5, [5.0] * 5, [0.2] * 5])}
    reasons = divergence_reasons(curve, start, end, 20.0)
    assert reasons[0] is None and "grew 50x" in reasons[1] and "rose" in reasons[2]


# ----- the exploding learning rate, end to end -------------------------------------------
TINY_SPECS = {
    "MLP": {"family": "MLP", "hidden_layers": 1, "width": 16, "n_freqs": 2},
    "TRI": {"family": "TRI", "hidden_layers": 1, "width": 16, "activation": "sine",
            "n_freqs": 2, "triplane_res": 8, "triplane_channels": 4},
    "HASH": {"family": "HASH", "hidden_layers": 1, "width": 16, "hash_levels": 2,
             "hash_log2_T": 8, "hash_features": 2, "hash_base_res": 4},
}
FARM = {**repo_section("nerf", "fit"), "steps": 30, "rays_per_step": 32, "samples_per_ray": 8, "eval_samples_per_ray": 8,
        "log_every": 5, "checkpoint_every": 100, "heldout_views": [0], "psnr_floor": -1e9,
        "carve_resolution": 8, "precision": "fp32", "skip_resolution": 0}


@pytest.fixture(scope="module")
def views_store(tmp_path_factory):
    from nfws.data.synthetic_views import synthetic_views
    from nfws.store import write_zarr

    views = synthetic_views(3, resolution=16, n_views=5, seed=0)
    path = tmp_path_factory.mktemp("views") / "views.zarr"
    write_zarr(path, {"images": views.images, "c2w": views.c2w, "intrinsics": views.intrinsics,
                      "object_ids": np.array(views.object_ids)})
    return path, list(views.object_ids)


@pytest.mark.parametrize("family", sorted(TINY_SPECS))
def test_exploding_learning_rate_fails_every_nerf_by_name(family, views_store, tmp_path):
    from nfws.fields.spec import ArchSpec
    from nfws.farm.train import train_shard

    store, ids = views_store
    spec = ArchSpec.from_dict(family, TINY_SPECS[family])
    with pytest.raises(RuntimeError) as err:
        train_shard(store, ids, spec, {**FARM, "lr": 1e6}, tmp_path / "s.zarr", "cpu", 0,
                    tmp_path / "ck")
    message = str(err.value)
    assert f"{len(ids)} NeRF(s) failed" in message and all(oid in message for oid in ids)
    assert not (tmp_path / "s.zarr").exists()
    # the same shard at the recipe's learning rate trains and is kept whole
    summary = train_shard(store, ids, spec, FARM, tmp_path / "ok.zarr", "cpu", 0, tmp_path / "ck")
    assert summary["n_dropped"] == 0


def test_a_diverged_nerf_is_dropped_and_listed_under_drop(views_store, tmp_path, monkeypatch):
    from nfws.fields.spec import ArchSpec
    from nfws.farm import train as farm
    from nfws.store import read_zarr

    store, ids = views_store
    real = farm.divergence_reasons

    def second_diverges(*args):            # the criterion is tested above; here the bookkeeping
        reasons = real(*args)
        return [reasons[0], "weights grew 1e+07x", *reasons[2:]]

    monkeypatch.setattr(farm, "divergence_reasons", second_diverges)
    summary = farm.train_shard(store, ids, ArchSpec.from_dict("MLP", TINY_SPECS["MLP"]),
                               {**FARM, "on_failure": "drop"}, tmp_path / "s.zarr", "cpu", 0,
                               tmp_path / "ck")
    arrays, attrs = read_zarr(tmp_path / "s.zarr", ["object_ids"])
    assert summary["n_dropped"] == 1 and list(arrays["object_ids"]) == [ids[0], ids[2]]
    assert attrs["dropped"] == [{"object_id": ids[1], "reason": "diverged: weights grew 1e+07x"}]


def _image_targets(tmp_path, n=4):
    from nfws.store import write_zarr

    imgs = (np.random.default_rng(0).random((n, 8, 8, 3)) * 255).astype(np.uint8)
    path = tmp_path / "t.zarr"
    write_zarr(path, {"images": imgs, "object_ids": np.array([f"f{i}" for i in range(n)]),
                      "labels": np.zeros(n, np.int64)}, attrs={"kind": "image"})
    return path


FIT = tiny_lora_fit(steps=20)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    from nfws.mlora.base_field import train_base_field

    tmp = tmp_path_factory.mktemp("base")
    targets = _image_targets(tmp)
    cfg = dict(d_z=4, mapping_layers=1, mapping_width=8, n_blocks=1, width=8, enc_width=8,
               omega0=4.0, stages=[dict(steps=10, batch=4, points=16, lr=1e-3)], lambda_r=1e-4,
               ema_decay=0.9, latent_init_std=0.01, checkpoint_every=100, curve_every=100)
    train_base_field(targets, cfg, tmp / "base.pt", seed=0, device=torch.device("cpu"))
    return targets, tmp / "base.pt"


@pytest.mark.parametrize("kind", ["mlp", "mlora_asym"])
def test_exploding_learning_rate_fails_every_instance_fit_by_name(kind, base, tmp_path):
    from nfws.mlora.train import fit_instances

    targets, base_ckpt = base
    cfg = {**FIT, "lr_start": 1e6, "lr_end": 1e6}
    # a loss that turns non-finite stops the fit at once; one that stays finite is judged
    # by the criterion at the end: either way the job fails naming every instance
    with pytest.raises((RuntimeError, FloatingPointError),
                       match=r"4 instance fit\(s\) diverged|non-finite loss at step") as err:
        fit_instances(kind, base_ckpt, targets, cfg, tmp_path / "x.zarr", 0, device=torch.device("cpu"))
    assert all(f"f{i}" in str(err.value) for i in range(4))
    assert not (tmp_path / "x.zarr").exists()
    info = fit_instances(kind, base_ckpt, targets, FIT, tmp_path / "ok.zarr", 0,
                         device=torch.device("cpu"))
    assert info["n_dropped"] == 0 and info["n"] == 4


def test_non_finite_instance_is_dropped_listed_and_counted_in_the_table(base, tmp_path):
    from nfws.mlora.evaluate import reconstruction_table
    from nfws.mlora.train import fit_instances
    from nfws.store import read_zarr

    targets, base_ckpt = base
    import nfws.mlora.train as inst

    # f2's weights are poisoned at the start: its loss is NaN from the first step
    real = inst.starting_params

    def poisoned(*args):
        params, template = real(*args)
        first = next(iter(params))
        params[first][2] = float("nan")
        return params, template

    cfg = {**FIT, "on_failure": "drop"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(inst, "starting_params", poisoned)
        info = fit_instances("mlora_asym", base_ckpt, targets, cfg, tmp_path / "x.zarr", 0,
                             device=torch.device("cpu"))
        with pytest.raises(FloatingPointError, match=r"non-finite loss at step 0 for \['f2'\]"):
            fit_instances("mlora_asym", base_ckpt, targets, FIT, tmp_path / "y.zarr", 0,
                          device=torch.device("cpu"))
    arrays, attrs = read_zarr(tmp_path / "x.zarr", ["object_ids", "score"])
    assert info["n_dropped"] == 1 and list(arrays["object_ids"]) == ["f0", "f1", "f3"]
    assert attrs["dropped"] == [{"object_id": "f2", "reason": "non-finite loss"}]
    assert np.isfinite(arrays["score"]).all()
    table = reconstruction_table({"mlora_asym": [tmp_path / "x.zarr"]}, {},
                                 tmp_path / "r.csv", tmp_path / "r.md")
    row = table.set_index("representation").loc["mLoRA-Asym"]
    assert row["n_images"] == 3 and row["n_images_dropped"] == 1
