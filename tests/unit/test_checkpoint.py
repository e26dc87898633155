"""Progress checkpoints: a matching one resumes, a foreign one is set aside, never blocks;
a job killed mid-run and rerun with an edited config starts afresh (farm, base field)."""
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from nfws.checkpoint import Checkpoint, input_fingerprint, tensor_digest
from nfws.store import read_zarr, write_zarr
from nfws.config_files import repo_section


def test_matching_checkpoint_resumes(tmp_path):
    ck = Checkpoint(tmp_path / "a.pt", {"config_hash": "x", "ids": ("a", "b")})
    ck.save({"step": 7, "w": torch.arange(3.0)})
    # a tuple and a list of the same ids are one identity (both are JSON lists)
    state = Checkpoint(tmp_path / "a.pt", {"ids": ["a", "b"], "config_hash": "x"}).load()
    assert state["step"] == 7 and torch.equal(state["w"], torch.arange(3.0))


@pytest.mark.parametrize("changed", [{"config_hash": "y"}, {"ids": ["a", "c"]}, {"seed": 1}])
def test_foreign_checkpoint_is_set_aside_with_the_reason_logged(tmp_path, caplog, changed):
    identity = {"config_hash": "x", "ids": ["a", "b"]}
    Checkpoint(tmp_path / "a.pt", identity).save({"step": 7})
    other = Checkpoint(tmp_path / "a.pt", {**identity, **changed})
    with caplog.at_level(logging.WARNING, logger="nfws.checkpoint"):
        assert other.load() is None
    assert not (tmp_path / "a.pt").exists() and (tmp_path / "a.pt.stale").exists()
    message = caplog.text
    assert "set aside" in message and "starting afresh" in message
    assert all(key in message for key in changed)
    # the next run saves and resumes its own checkpoint; clear removes both files
    other.save({"step": 3})
    assert other.load()["step"] == 3
    other.clear()
    assert not (tmp_path / "a.pt").exists() and not (tmp_path / "a.pt.stale").exists()


def test_unreadable_or_foreign_format_checkpoint_is_set_aside(tmp_path, caplog):
    (tmp_path / "bad.pt").write_bytes(b"not a torch file")
    torch.save({"step": 3}, tmp_path / "old.pt")          # an older layout: no identity
    with caplog.at_level(logging.WARNING, logger="nfws.checkpoint"):
        assert Checkpoint(tmp_path / "bad.pt", {"k": 1}).load() is None
        assert Checkpoint(tmp_path / "old.pt", {"k": 1}).load() is None
    assert caplog.text.count("cannot be read") == 2
    assert (tmp_path / "bad.pt.stale").exists() and (tmp_path / "old.pt.stale").exists()


def test_input_fingerprint_follows_rewrites_of_files_and_stores(tmp_path):
    store = tmp_path / "s.zarr"
    write_zarr(store, {"x": np.zeros((2, 3))})
    (tmp_path / "m.parquet").write_bytes(b"abc")
    first = input_fingerprint([store, tmp_path / "m.parquet"])
    assert input_fingerprint([[tmp_path / "m.parquet"], str(store)]) == first   # order, nesting
    os.utime(tmp_path / "m.parquet", ns=(1, 1))
    assert input_fingerprint([store, tmp_path / "m.parquet"]) != first
    second = input_fingerprint([store, tmp_path / "m.parquet"])
    write_zarr(store, {"x": np.ones((2, 3))})                                   # rewritten
    assert input_fingerprint([store, tmp_path / "m.parquet"]) != second
    with pytest.raises(FileNotFoundError, match="nope"):
        input_fingerprint([tmp_path / "nope"])


def test_tensor_digest_is_the_values():
    a = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(2)}
    same = {"b": torch.zeros(2), "w": torch.arange(6.0).reshape(3, 2).T.T.reshape(2, 3)}
    assert tensor_digest(a) == tensor_digest(same)
    assert tensor_digest(a) != tensor_digest({**a, "b": torch.tensor([0.0, 1e-7])})
    assert tensor_digest(a) != tensor_digest({**a, "w": a["w"].reshape(3, 2)})


# ----- kill, edit, rerun --------------------------------------------------------------
def _run_until_checkpoint_then_kill(code: str, checkpoint, timeout=120.0):
    """Run ``code`` in a fresh interpreter, SIGKILL it once ``checkpoint`` exists."""
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    try:
        while not checkpoint.exists():
            if proc.poll() is not None:
                raise AssertionError(f"job ended before its first checkpoint:\n"
                                     f"{proc.stdout.read().decode()}")
            if time.monotonic() > deadline:
                raise AssertionError("no checkpoint within the timeout")
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


FARM_SPEC = {"family": "MLP", "hidden_layers": 1, "width": 16, "n_freqs": 2}
FARM_CFG = {**repo_section("nerf", "fit"), "steps": 4000, "rays_per_step": 16, "samples_per_ray": 4, "eval_samples_per_ray": 4,
            "log_every": 1000, "checkpoint_every": 5, "heldout_views": [0], "psnr_floor": -1e9,
            "carve_resolution": 4, "precision": "fp32", "skip_resolution": 0}


def test_killed_nerf_job_rerun_with_an_edited_config_starts_afresh(tmp_path, caplog):
    from nfws.data.synthetic_views import synthetic_views
    from nfws.fields.spec import ArchSpec
    from nfws.farm.train import train_shard

    views = synthetic_views(2, resolution=8, n_views=3, seed=0)
    store = tmp_path / "views.zarr"
    write_zarr(store, {"images": views.images, "c2w": views.c2w, "intrinsics": views.intrinsics,
                       "object_ids": np.array(views.object_ids)})
    ids, ck = list(views.object_ids), tmp_path / "ck" / "shard.ckpt.pt"
    _run_until_checkpoint_then_kill(f"""
        import torch; torch.set_num_threads(1)
        from nfws.fields.spec import ArchSpec
        from nfws.farm.train import train_shard
        train_shard({str(store)!r}, {ids!r}, ArchSpec.from_dict("MLP", {FARM_SPEC!r}),
                    {FARM_CFG!r}, {str(tmp_path / "shard.zarr")!r}, "cpu", 0,
                    {str(tmp_path / "ck")!r})
    """, ck)
    assert not (tmp_path / "shard.zarr").exists()

    edited = {**FARM_CFG, "steps": 20, "log_every": 5, "lr": 5e-3}     # the user edits the config
    spec = ArchSpec.from_dict("MLP", FARM_SPEC)
    with caplog.at_level(logging.WARNING, logger="nfws.checkpoint"):
        train_shard(store, ids, spec, edited, tmp_path / "shard.zarr", "cpu", 0, tmp_path / "ck")
    assert "different config_hash" in caplog.text and "starting afresh" in caplog.text
    assert not ck.exists() and not ck.with_name(ck.name + ".stale").exists()
    train_shard(store, ids, spec, edited, tmp_path / "fresh.zarr", "cpu", 0, tmp_path / "ck2")
    rerun, _ = read_zarr(tmp_path / "shard.zarr")
    fresh, _ = read_zarr(tmp_path / "fresh.zarr")
    for name in fresh:
        np.testing.assert_array_equal(rerun[name], fresh[name], err_msg=name)


BASE_CFG = dict(d_z=4, mapping_layers=1, mapping_width=8, n_blocks=1, width=8, enc_width=8,
                omega0=4.0, stages=[dict(steps=100000, batch=4, points=16, lr=1e-3)],
                lambda_r=1e-4, ema_decay=0.9, latent_init_std=0.01, checkpoint_every=5, curve_every=3)


def test_killed_base_field_job_rerun_with_an_edited_config_starts_afresh(tmp_path, caplog):
    from nfws.mlora.base_field import train_base_field

    imgs = np.random.default_rng(0).random((4, 8, 8, 3))
    targets = tmp_path / "t.zarr"
    write_zarr(targets, {"images": (imgs * 255).astype(np.uint8),
                         "object_ids": np.array(list("abcd")),
                         "labels": np.zeros(4, np.int64)}, attrs={"kind": "image"})
    out, ck = tmp_path / "base.pt", tmp_path / "base.pt.progress.pt"
    _run_until_checkpoint_then_kill(f"""
        import torch; torch.set_num_threads(1)
        from nfws.mlora.base_field import train_base_field
        train_base_field({str(targets)!r}, {BASE_CFG!r}, {str(out)!r}, 0, torch.device("cpu"))
    """, ck)
    assert not out.exists()

    edited = {**BASE_CFG, "stages": [dict(steps=12, batch=4, points=16, lr=3e-3)]}
    with caplog.at_level(logging.WARNING, logger="nfws.checkpoint"):
        info = train_base_field(targets, edited, out, 0, torch.device("cpu"))
    assert "different config_hash" in caplog.text and "starting afresh" in caplog.text
    assert info["steps"] == 12 and not ck.exists()
    train_base_field(targets, edited, tmp_path / "fresh.pt", 0, torch.device("cpu"))
    rerun = torch.load(out, weights_only=True)
    fresh = torch.load(tmp_path / "fresh.pt", weights_only=True)
    assert torch.equal(rerun["loss_curve"], fresh["loss_curve"])
    for key, value in fresh["state"].items():
        assert torch.equal(rerun["state"][key], value), key
