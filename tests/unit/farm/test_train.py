from dataclasses import MISSING, fields

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from workflow_helpers import REPO
from nfws.data.synthetic_views import synthetic_views
from nfws.checkpoint import Checkpoint
from nfws.farm.previews import nerf_previews
from nfws.fields.spec import ArchSpec
from nfws.fields.stacks import initial_stack, make_stack, select
from nfws.farm import train as farm
from nfws.farm.train import FarmConfig, train_shard
from nfws.farm.rays import RayBank, object_boxes, split_views
from nfws.farm.streams import NerfStreams
from nfws.render.volrend import Rendered
from nfws.store import read_zarr, write_zarr
from nfws.config_files import repo_section

SPEC = ArchSpec.from_dict("MLP", {"family": "MLP", "hidden_layers": 1, "width": 16, "n_freqs": 2})
FIT = repo_section("nerf", "fit")
TINY = {**FIT, "steps": 12, "rays_per_step": 32, "samples_per_ray": 8, "eval_samples_per_ray": 8,
        "log_every": 3, "checkpoint_every": 4, "heldout_views": [0], "psnr_floor": -1e9,
        "carve_resolution": 8, "precision": "fp32",
        # empty cells refreshed at steps 3, 7, 11: the resume test crosses a refresh
        "skip_resolution": 4, "skip_after": 0.25, "skip_every": 4}


@pytest.fixture(scope="module")
def views():
    return synthetic_views(3, resolution=16, n_views=5, seed=0)


@pytest.fixture()
def store(tmp_path, views):
    path = tmp_path / "views.zarr"
    write_zarr(path, {"images": views.images, "c2w": views.c2w, "intrinsics": views.intrinsics,
                      "object_ids": np.array(views.object_ids)})
    return path


def test_stacked_adam_equals_per_nerf_adam():
    gen = torch.Generator().manual_seed(0)
    stack = make_stack(SPEC, 2, gen)
    singles = [select(stack, i) for i in range(2)]
    x = torch.rand(2, 64, 3, generator=gen) * 1.4 - 0.7
    target = torch.rand(2, 64, 3, generator=gen)

    def loss_of(s, xs, ts):
        rgb, sigma = s(xs)
        return ((rgb - ts) ** 2).mean(dim=(1, 2)) + sigma.mean(1)

    opt = torch.optim.Adam(stack.parameters(), lr=1e-2, eps=1e-15)
    opts = [torch.optim.Adam(s.parameters(), lr=1e-2, eps=1e-15) for s in singles]
    for _ in range(5):
        opt.zero_grad()
        loss_of(stack, x, target).sum().backward()
        opt.step()
        for i, (s, o) in enumerate(zip(singles, opts)):
            o.zero_grad()
            loss_of(s, x[i:i + 1], target[i:i + 1]).sum().backward()
            o.step()
    for name, value in stack.state_arrays().items():
        for i, s in enumerate(singles):
            np.testing.assert_allclose(value[i], s.state_arrays()[name][0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(stack.state_arrays()["mlp.0"][0], make_stack(SPEC, 2, torch.Generator().manual_seed(0)).state_arrays()["mlp.0"][0])


def test_lr_schedule_decays_at_fractions():
    cfg = FarmConfig.from_dict({**FIT, "steps": 100, "log_every": 10})
    assert cfg.lr_at(0) == pytest.approx(1e-2) and cfg.lr_at(49) == pytest.approx(1e-2)
    assert cfg.lr_at(50) == pytest.approx(3.3e-3)
    assert cfg.lr_at(75) == pytest.approx(1e-2 * 0.33**2)
    assert cfg.lr_at(99) == pytest.approx(1e-2 * 0.33**3)


def test_tiny_shard_trains_and_writes_formats(tmp_path, store, views):
    # the learning check samples evenly: 4^3 cells over a 16-pixel object are too coarse
    # to place samples with (their effect on quality is measured by the nerf-farm bench)
    cfg = {**TINY, "steps": 80, "rays_per_step": 128, "log_every": 20, "checkpoint_every": 100,
           "lr": 3e-2, "skip_resolution": 0}
    out = tmp_path / "nerfs" / "shard0.zarr"
    ids = views.object_ids[:2]
    summary = train_shard(store, ids, SPEC, cfg, out, "cpu", seed=1, checkpoint_dir=tmp_path / "ck")
    arrays, attrs = read_zarr(out)
    for name, shape in SPEC.param_shapes().items():
        assert arrays[name].shape == (2, *shape) and arrays[name].dtype == np.float32
    assert list(arrays["object_ids"]) == ids
    assert arrays["psnr"].shape == (2,) and np.isfinite(arrays["psnr"]).all()
    curve = arrays["loss_curve"]
    assert curve.shape == (2, 4)
    assert (curve[:, -1] < curve[:, 0]).all()
    box = arrays["sample_box"]
    assert box.shape == (2, 2, 3) and (box[:, 0] < box[:, 1]).all() and (np.abs(box) <= 0.7).all()
    # learning: the held-out views are rendered better than by the NeRFs' starting fields
    start = initial_stack(SPEC, ids, "shared", 1)
    sub = views.select([0, 1])
    start_psnr = farm.heldout_psnr(start, sub, [0], torch.from_numpy(box),
                                   FarmConfig.from_dict(cfg), "cpu")
    assert (arrays["psnr"] > start_psnr + 2.0).all()
    assert attrs["arch"] == SPEC.to_dict() and attrs["dropped"] == [] and attrs["config_hash"]
    assert summary["n_trained"] == 2
    assert not (tmp_path / "ck" / "shard0.ckpt.pt").exists()

    png = tmp_path / "previews" / "MLP.png"
    nerf_previews(out, store, png, FIT, n_objects=2, eval_samples_per_ray=32, tile=50)
    with Image.open(png) as im:  # 2 objects x 1 held-out view: (GT, NeRF) pairs of 50 px tiles
        assert im.size == (2 * 50, 2 * (50 + 14))


def test_resume_from_checkpoint_matches_uninterrupted_run(tmp_path, store, views, monkeypatch):
    ids = views.object_ids[:2]
    full = tmp_path / "full.zarr"
    train_shard(store, ids, SPEC, TINY, full, "cpu", seed=3, checkpoint_dir=tmp_path / "ck_full")

    real_step = farm._train_step
    seen = []

    def crash_at_step_9(*args):
        step = args[-1]
        seen.append(step)
        if step == 9:
            raise KeyboardInterrupt("preempted")
        return real_step(*args)

    out = tmp_path / "resumed.zarr"
    monkeypatch.setattr(farm, "_train_step", crash_at_step_9)
    with pytest.raises(KeyboardInterrupt):
        train_shard(store, ids, SPEC, TINY, out, "cpu", seed=3, checkpoint_dir=tmp_path / "ck")
    assert (tmp_path / "ck" / "resumed.ckpt.pt").exists() and not out.exists()
    seen.clear()
    monkeypatch.setattr(farm, "_train_step", lambda *a: (seen.append(a[-1]), real_step(*a))[1])
    train_shard(store, ids, SPEC, TINY, out, "cpu", seed=3, checkpoint_dir=tmp_path / "ck")
    assert seen[0] == 8  # last checkpoint was after step index 7 (every 4 steps)
    a, _ = read_zarr(full)
    b, _ = read_zarr(out)
    for name in list(SPEC.param_shapes()) + ["psnr", "loss_curve"]:
        np.testing.assert_array_equal(a[name], b[name])


def _poison_render(bad_index):
    real = farm.render_rays

    def render(*args, **kwargs):
        out = real(*args, **kwargs)
        rgb = out.rgb.clone()
        rgb[bad_index] = float("nan")
        return Rendered(rgb, out.opacity, out.depth)
    return render


def test_nan_divergence_is_reported_by_object_id(tmp_path, store, views, monkeypatch):
    monkeypatch.setattr(farm, "render_rays", _poison_render(1))
    ids = views.object_ids[:3]
    with pytest.raises(RuntimeError, match=f"{ids[1]} \\(MLP\\): non-finite loss at step 0"):
        train_shard(store, ids, SPEC, TINY, tmp_path / "s.zarr", "cpu", 0, tmp_path / "ck")
    assert not (tmp_path / "s.zarr").exists()

    out = tmp_path / "dropped.zarr"
    train_shard(store, ids, SPEC, {**TINY, "on_failure": "drop"}, out, "cpu", 0, tmp_path / "ck2")
    arrays, attrs = read_zarr(out)
    assert list(arrays["object_ids"]) == [ids[0], ids[2]]
    assert np.isfinite(arrays["mlp.0"]).all()
    assert attrs["dropped"] == [{"object_id": ids[1], "reason": "non-finite loss at step 0"}]


def test_psnr_floor_fails_the_job(tmp_path, store, views):
    with pytest.raises(RuntimeError, match="below psnr_floor 99"):
        train_shard(store, views.object_ids[:1], SPEC, {**TINY, "psnr_floor": 99.0, "steps": 3,
                                                         "log_every": 1},
                    tmp_path / "s.zarr", "cpu", 0, tmp_path / "ck")


def test_missing_views_and_bad_config_are_named(tmp_path, store, views):
    with pytest.raises(KeyError, match="no views for objects \\['ghost'\\]"):
        train_shard(store, [views.object_ids[0], "ghost"], SPEC, TINY, tmp_path / "s.zarr",
                    "cpu", 0, tmp_path / "ck")
    with pytest.raises(ValueError, match="unknown keys \\['stepz'\\]"):
        FarmConfig.from_dict({**FIT, "stepz": 3})
    with pytest.raises(ValueError, match="nerf.fit.skip_after: must lie in \\[0, 1\\)"):
        FarmConfig.from_dict({**FIT, "skip_after": 1.0})
    with pytest.raises(ValueError, match="nerf.fit.init: must be one of"):
        FarmConfig.from_dict({**FIT, "init": "random"})
    with pytest.raises(ValueError, match="heldout_views"):
        train_shard(store, views.object_ids[:1], SPEC, {**TINY, "heldout_views": [9]},
                    tmp_path / "s.zarr", "cpu", 0, tmp_path / "ck")


def test_foreground_rays_only_skip_pure_background(views):
    """Every pixel with alpha > 0 keeps its ray in the bank (the carved box is conservative)."""
    cfg = FarmConfig.from_dict(TINY)
    train, _ = split_views(views.images.shape[1], cfg.heldout_views, "mem")
    boxes = object_boxes(views, train, SPEC, cfg.carve_resolution)
    bank = RayBank(views, train, boxes, "cpu")
    for b in range(len(views.object_ids)):
        fg = int((views.images[b, train, ..., 3] > 0).sum())
        kept_fg = int((bank.rgba[b, :int(bank.counts[b]), 3] > 0).sum())
        assert kept_fg == fg > 0


def test_fused_adam_follows_the_reference_adam_update():
    # the farm steps with fused Adam; check it against Adam's closed form written out
    # (m, v moments with bias correction) for a few steps on a stacked parameter
    gen = torch.Generator().manual_seed(4)
    p = torch.nn.Parameter(torch.randn(3, 5, 4, generator=gen))
    grads = [torch.randn(3, 5, 4, generator=gen) for _ in range(4)]
    lr, eps, b1, b2 = 1e-2, 1e-15, 0.9, 0.999
    opt = torch.optim.Adam([p], lr=lr, eps=eps, fused=True)
    start = p.detach().clone()
    ref = start.double()
    m = torch.zeros_like(ref)
    v = torch.zeros_like(ref)
    for t, g in enumerate(grads, start=1):
        p.grad = g.clone()
        opt.step()
        g = g.double()
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        ref = ref - lr * (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps)
    assert torch.allclose(p.detach().double(), ref, atol=1e-6, rtol=0)
    assert (p.detach() - start).abs().mean() > 5e-3     # the steps (lr 1e-2 each) moved it


def test_checkpoint_round_trips_the_empty_space_cells(tmp_path):
    from nfws.fields.stacks import make_stack
    from nfws.render.skipping import OccupancyCells

    gen = torch.Generator().manual_seed(5)
    stack = make_stack(SPEC, 2, gen, "cpu")
    optimiser = torch.optim.Adam(stack.parameters(), lr=1e-2)
    boxes = torch.tensor([[-0.5] * 3, [0.5] * 3]).expand(2, 2, 3)
    cells = OccupancyCells(boxes, resolution=4)
    cells.opacity = torch.rand(2, 64, generator=gen)
    cells.occupied = cells.opacity > 0.5
    state = {"step": 7, "loss_acc": torch.zeros(2, dtype=torch.float64),
             "loss_curve": torch.zeros(2, 4), "failed_step": torch.full((2,), -1)}
    streams = NerfStreams(5, "MLP", ["a", "b"])
    streams.uniform("rays", 10)
    checkpoint = Checkpoint(tmp_path / "ck.pt", {"arch": "MLP"})
    checkpoint.save(farm._progress(state, stack, optimiser, streams, None, cells))
    fresh = OccupancyCells(boxes, resolution=4)
    fresh_streams = NerfStreams(5, "MLP", ["a", "b"])
    restored = farm._restore(checkpoint.load(), stack, optimiser, fresh_streams, None, fresh)
    assert restored["step"] == 7
    assert torch.equal(fresh.opacity, cells.opacity) and torch.equal(fresh.occupied, cells.occupied)
    assert torch.equal(fresh_streams.uniform("rays", 4), streams.uniform("rays", 4))


def test_a_nerf_trained_in_a_shard_is_the_nerf_trained_alone(views):
    # each NeRF draws from streams of its own, so neither the other NeRFs of its shard, nor
    # its slot, nor how its rays are split into calls (points_per_call: 8 rays a call for
    # the 3-NeRF shard, all 24 alone) change it beyond rounding; the cells are refreshed
    # at steps 3, 7 and 11 and place the samples from step 3 on
    cfg = FarmConfig.from_dict({**TINY, "rays_per_step": 24, "points_per_call": 192})
    shard = farm.fit_stack(views, SPEC, cfg, "cpu", seed=2, progress=False)
    alone = farm.fit_stack(views.select([2]), SPEC, cfg, "cpu", seed=2, progress=False)
    swapped = farm.fit_stack(views.select([2, 0]), SPEC, cfg, "cpu", seed=2, progress=False)
    for name, value in shard.stack.state_arrays().items():
        np.testing.assert_allclose(alone.stack.state_arrays()[name][0], value[2], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(swapped.stack.state_arrays()[name][0], value[2], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(swapped.stack.state_arrays()[name][1], value[0], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(alone.psnr[0], shard.psnr[2], rtol=1e-5)
    assert not np.allclose(shard.stack.state_arrays()["mlp.0"][0], shard.stack.state_arrays()["mlp.0"][2])


def test_streams_are_keyed_per_nerf_and_purpose():
    one = NerfStreams(0, "TRI", ["a", "b"])
    two = NerfStreams(0, "TRI", ["b"])
    rays = one.uniform("rays", 5, dtype=torch.float64)
    assert rays.shape == (2, 5) and rays.dtype == torch.float64
    assert torch.equal(rays[1], two.uniform("rays", 5, dtype=torch.float64)[0])
    assert not torch.equal(rays[0], rays[1])
    assert not torch.equal(NerfStreams(0, "TRI", ["a"]).uniform("jitter", 5)[0], rays[0].float())
    assert not torch.equal(NerfStreams(1, "TRI", ["a"]).uniform("rays", 5, dtype=torch.float64)[0], rays[0])
    with pytest.raises(ValueError, match="no 'cells' streams"):
        two.load_state_dict({p: v for p, v in two.state_dict().items() if p != "cells"})
    with pytest.raises(ValueError, match="holds 2 'rays' streams for 1 NeRFs"):
        two.load_state_dict(one.state_dict())


def test_cuda_out_of_memory_names_the_shard_and_its_size(tmp_path, store, views, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(farm, "fit_stack", out_of_memory)
    with pytest.raises(RuntimeError, match=r"shard7\.zarr: CUDA out of memory training 3 MLP "
                                           r"NeRFs at once; lower nerf\.shard_size \(this shard "
                                           r"has 3\)"):
        train_shard(store, list(views.object_ids), SPEC, TINY, tmp_path / "shard7.zarr", "cpu",
                    0, tmp_path / "ck")


def test_auto_precision_is_bf16_on_cuda_only():
    from nfws.farm.train import autocast, resolved_precision

    assert resolved_precision(torch.device("cpu"), "auto") == "fp32"
    assert resolved_precision(torch.device("cuda"), "auto") == "bf16"
    assert resolved_precision(torch.device("cpu"), "bf16") == "bf16"
    with autocast(torch.device("cpu"), "auto"):
        assert not torch.is_autocast_enabled("cpu")
    with autocast(torch.device("cpu"), "bf16"):
        assert torch.is_autocast_enabled("cpu")
    with pytest.raises(ValueError, match="precision"):
        FarmConfig.from_dict({**FIT, "precision": "fp16"})


def test_config_yaml_is_the_one_source_of_farm_settings():
    """No defaults in the code to drift from config.yaml; a missing key is named."""
    fit = yaml.safe_load((REPO / "config.yaml").read_text())["nerf"]["fit"]
    assert FarmConfig.from_dict(fit).to_dict() == {
        k: tuple(v) if isinstance(v, list) else v for k, v in fit.items()}
    assert all(f.default is MISSING for f in fields(FarmConfig))
    with pytest.raises(ValueError, match=r"config nerf.fit: missing keys \['lr'\]"):
        FarmConfig.from_dict({k: v for k, v in fit.items() if k != "lr"})
