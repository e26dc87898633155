"""NeRF shard: written and read back unchanged, partial reads, and bad shards refused with
the file named."""
from dataclasses import replace

import numpy as np
import pytest

from nfws.fields.shard import (NerfShard, read_nerf_shard, write_nerf_shard,
                               write_random_nerf_shard)
from nfws.fields.spec import ArchSpec
from nfws.store import read_zarr, write_zarr

SPEC = ArchSpec("H", "HASH", hash_levels=2, hash_log2_T=6, hash_features=2, hash_base_res=2,
                width=16, hidden_layers=1)


def full_shard(path, n=3) -> NerfShard:
    rng = np.random.default_rng(0)
    return NerfShard(
        path, SPEC, [f"obj_{i}" for i in range(n)],
        {k: rng.normal(size=(n,) + s).astype(np.float32) for k, s in SPEC.param_shapes().items()},
        psnr=rng.uniform(20, 30, n).astype(np.float32),
        loss_curve=rng.uniform(size=(n, 5)).astype(np.float32),
        sample_box=np.tile(np.array([[-0.5] * 3, [0.5] * 3], np.float32), (n, 1, 1)),
        config_hash="abc", dropped=[{"object_id": "obj_9", "reason": "diverged"}],
        heldout_views=[0, 2], seed=7)


def test_round_trip(tmp_path):
    shard = full_shard(tmp_path / "s.zarr")
    write_nerf_shard(shard)
    back = read_nerf_shard(shard.path)
    assert back.spec == SPEC and back.object_ids == shard.object_ids
    assert back.params.keys() == shard.params.keys()
    for k, v in shard.params.items():
        assert np.array_equal(back.params[k], v) and back.params[k].dtype == np.float32
    for k in ("psnr", "loss_curve", "sample_box"):
        assert np.array_equal(getattr(back, k), getattr(shard, k))
    assert (back.config_hash, back.dropped, back.heldout_views, back.seed) == \
        ("abc", shard.dropped, [0, 2], 7)
    _, attrs = read_zarr(shard.path, [])
    assert attrs["arch"] == SPEC.to_dict()


def test_attrs_and_arrays_left_none_are_not_written(tmp_path):
    ids = write_random_nerf_shard(tmp_path / "r.zarr", SPEC, 4, seed=1)
    arrays, attrs = read_zarr(tmp_path / "r.zarr")
    assert "sample_box" not in arrays and "seed" not in attrs and "heldout_views" not in attrs
    back = read_nerf_shard(tmp_path / "r.zarr", arrays=("psnr", "loss_curve"))
    assert back.object_ids == ids and back.sample_box is None and back.seed is None
    assert back.config_hash == "synthetic" and back.dropped == []
    hash_ = back.params["hash"]
    for level, size in enumerate(SPEC.level_sizes()):
        assert not hash_[:, level, size:].any()


def test_psnr_read_needs_no_parameters(tmp_path):
    shard = full_shard(tmp_path / "s.zarr")
    write_nerf_shard(shard)
    arrays, attrs = read_zarr(shard.path)
    del arrays["mlp.0"], arrays["hash"]
    write_zarr(tmp_path / "noparams.zarr", arrays, attrs)
    back = read_nerf_shard(tmp_path / "noparams.zarr", params=False, arrays=("psnr",))
    assert back.params == {} and back.loss_curve is None and back.sample_box is None
    assert np.array_equal(back.psnr, shard.psnr) and back.dropped == shard.dropped
    with pytest.raises(ValueError, match=r"noparams\.zarr: missing parameter array 'hash'"):
        read_nerf_shard(tmp_path / "noparams.zarr")


def rewritten(tmp_path, name, edit):
    """A copy of a good shard with ``edit(arrays, attrs)`` applied, written unchecked."""
    write_nerf_shard(full_shard(tmp_path / "good.zarr"))
    arrays, attrs = read_zarr(tmp_path / "good.zarr")
    edit(arrays, attrs)
    write_zarr(tmp_path / name, arrays, attrs)
    return tmp_path / name


def test_bad_shards_are_refused_with_the_file_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.zarr: zarr store missing"):
        read_nerf_shard(tmp_path / "nope.zarr")
    noarch = rewritten(tmp_path, "noarch.zarr", lambda a, t: t.pop("arch"))
    with pytest.raises(ValueError, match=r"noarch\.zarr: attrs lack 'arch'"):
        read_nerf_shard(noarch, params=False, arrays=())
    nobox = rewritten(tmp_path, "nobox.zarr", lambda a, t: a.pop("sample_box"))
    with pytest.raises(ValueError, match=r"nobox\.zarr: missing arrays \['sample_box'\]"):
        read_nerf_shard(nobox)
    assert read_nerf_shard(nobox, arrays=("psnr",)).psnr is not None
    nomlp = rewritten(tmp_path, "nomlp.zarr", lambda a, t: a.pop("mlp.1"))
    with pytest.raises(ValueError, match=r"nomlp\.zarr: missing parameter array 'mlp\.1'"):
        read_nerf_shard(nomlp, arrays=())
    wide = rewritten(tmp_path, "wide.zarr",
                     lambda a, t: a.update({"mlp.0": np.zeros((3, 16, 32), np.float32)}))
    with pytest.raises(ValueError, match=r"wide\.zarr: array 'mlp\.0' has shape \(3, 16, 32\), "
                                         r"architecture 'H' needs \[n, 16, 16\]"):
        read_nerf_shard(wide, arrays=())
    short = rewritten(tmp_path, "short.zarr", lambda a, t: a.update(psnr=a["psnr"][:2]))
    with pytest.raises(ValueError, match=r"short\.zarr: .*'psnr': 2"):
        read_nerf_shard(short, params=False, arrays=("psnr",))
    dup = rewritten(tmp_path, "dup.zarr",
                    lambda a, t: a.update(object_ids=np.array(["x", "x", "y"])))
    with pytest.raises(ValueError, match=r"dup\.zarr: 3 NeRFs need as many unique object_ids"):
        read_nerf_shard(dup, params=False, arrays=())
    with pytest.raises(ValueError, match=r"bad\.zarr: unknown NeRF shard arrays \['images'\]"):
        read_nerf_shard(tmp_path / "bad.zarr", arrays=("images",))


def test_writer_refuses_parameters_that_do_not_fit_the_spec(tmp_path):
    shard = full_shard(tmp_path / "w.zarr")
    with pytest.raises(ValueError, match=r"w\.zarr: missing parameter array 'mlp\.0'"):
        write_nerf_shard(replace(shard, params={"hash": shard.params["hash"]}))
    with pytest.raises(ValueError, match=r"w\.zarr: .*'psnr': 2"):
        write_nerf_shard(replace(shard, psnr=shard.psnr[:2]))
    assert not (tmp_path / "w.zarr").exists()
