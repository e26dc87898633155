"""Batched instance fitting: equivalence to one-at-a-time, masks, resume, output store."""
import numpy as np
import pytest
import torch

from hand_built import random_image_targets
from nfws.data.targets import load_targets
from nfws.mlora.train import (fit_checkpoint, fit_instances, fit_params, load_fitted,
                                make_representation, shared_init)
from nfws.store import read_zarr
from hand_built import tiny_lora_fit

CPU = torch.device("cpu")
FIT = tiny_lora_fit(checkpoint_every=5)


@pytest.fixture(scope="module")
def image_targets(tmp_path_factory):
    d = tmp_path_factory.mktemp("img")
    random_image_targets(d / "t.zarr", 5, 6, labels=np.arange(5) % 2)
    return d / "t.zarr"


@pytest.fixture(scope="module")
def base_ckpt(tmp_path_factory, image_targets):
    from nfws.mlora.base_field import train_base_field
    cfg = dict(d_z=4, mapping_layers=1, mapping_width=8, n_blocks=1, width=8, enc_width=8,
               omega0=4.0, stages=[dict(steps=3, batch=5, points=16, lr=1e-3)], lambda_r=1e-4,
               ema_decay=0.9, latent_init_std=0.01, checkpoint_every=100, curve_every=100)
    out = tmp_path_factory.mktemp("base") / "base.pt"
    train_base_field(image_targets, cfg, out, seed=0, device=CPU)
    return out


@pytest.mark.parametrize("kind", ["mlp_asym", "mlora_asym", "lora"])
def test_batched_fit_equals_one_at_a_time(kind, image_targets, base_ckpt):
    data = load_targets(image_targets)
    rep = make_representation(kind, base_ckpt, data, FIT)
    idx = [0, 2, 4]
    start = shared_init(rep, 3, seed=1)
    batched, curve = fit_params(rep, start, data, idx, FIT, seed=5, device=CPU)
    for b, i in enumerate(idx):
        one, one_curve = fit_params(rep, {k: v[b:b + 1] for k, v in start.items()}, data, [i],
                                    FIT, seed=5, device=CPU)
        for k in one:
            assert torch.allclose(one[k][0], batched[k][b], atol=1e-5, rtol=1e-4), k
        assert np.allclose(one_curve[0], curve[b], rtol=1e-4)
    assert curve.shape == (3, 4)          # logged at steps 0, 4, 8 and the last


def test_masked_entries_never_change_and_others_do(image_targets, base_ckpt):
    data = load_targets(image_targets)
    for kind in ("mlp_asym", "lora_asym", "mlora_asym"):
        rep = make_representation(kind, base_ckpt, data, FIT)
        start = shared_init(rep, 2, seed=0)
        fitted, _ = fit_params(rep, start, data, [0, 1], FIT, seed=0, device=CPU)
        for e in rep.entries:
            if e.mask is None:
                continue
            assert torch.equal(fitted[e.name][:, e.mask], start[e.name][:, e.mask])
            assert not torch.equal(fitted[e.name][:, ~e.mask], start[e.name][:, ~e.mask])


def test_resume_gives_same_result_as_uninterrupted(image_targets, tmp_path):
    data = load_targets(image_targets)
    rep = make_representation("mlp", None, data, FIT)
    start = shared_init(rep, 2, seed=0)
    full, _ = fit_params(rep, start, data, [0, 1], FIT, seed=0, device=CPU)
    out, progress = tmp_path / "p.zarr", tmp_path / "p.zarr.progress.pt"
    short = dict(FIT, steps=12, checkpoint_every=5)
    checkpoint = fit_checkpoint(out, rep, start, [0, 1], short, 0, image_targets, None)
    # interrupt after the step-10 checkpoint by raising from the learning-rate schedule
    import nfws.mlora.train as inst
    real = inst.cosine_lr

    def failing(step, *a):
        if step == 11:
            raise KeyboardInterrupt
        return real(step, *a)
    inst.cosine_lr = failing
    try:
        with pytest.raises(KeyboardInterrupt):
            fit_params(rep, start, data, [0, 1], short, seed=0, device=CPU, checkpoint=checkpoint)
    finally:
        inst.cosine_lr = real
    assert torch.load(progress, weights_only=True)["state"]["step"] == 10
    resumed, _ = fit_params(rep, start, data, [0, 1], short, seed=0, device=CPU,
                            checkpoint=checkpoint)
    for k in full:
        assert torch.allclose(full[k], resumed[k], atol=1e-6)


def test_fit_instances_writes_store_with_layout(image_targets, base_ckpt, tmp_path):
    out = tmp_path / "0.zarr"
    info = fit_instances("mlora_asym", base_ckpt, image_targets, FIT, out, seed=0,
                         shard=1, n_shards=2, device=CPU)
    arrays, attrs = read_zarr(out)
    assert [str(o) for o in arrays["object_ids"]] == ["o1", "o3"]
    assert arrays["weights"].shape == (2, attrs["n_params"])
    assert sum(np.prod(e["shape"]) for e in attrs["layout"]) == attrs["n_params"]
    assert attrs["n_trainable"] == attrs["n_params"] - int(arrays["frozen"].sum())
    assert attrs["metric"] == "psnr_db" and np.isfinite(arrays["score"]).all()
    assert info["n"] == 2 and not (tmp_path / "0.zarr.progress.pt").exists()
    rep, w, a = load_fitted(out)
    assert w.shape == (2, rep.n_params) and list(a.labels) == [1, 1]
    with pytest.raises(ValueError, match="shard"):
        fit_instances("mlp", None, image_targets, FIT, tmp_path / "x.zarr", 0, shard=2,
                      n_shards=2, device=CPU)


def test_template_init_starts_everyone_from_instance_zero(image_targets, tmp_path):
    from nfws.mlora.train import starting_params
    data = load_targets(image_targets)
    rep = make_representation("mlp", None, data, FIT)
    start, tid = starting_params(rep, data, 3, dict(FIT, mlp_template_init=True), 0, CPU)
    template, _ = fit_params(rep, shared_init(rep, 1, 0), data, [0], FIT, 0, CPU)
    assert tid == "o0"
    for k in start:
        assert torch.equal(start[k], template[k].expand_as(start[k]))
