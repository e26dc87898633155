"""The NeRF farm's summary table counts kept and dropped NeRFs over every shard."""
from dataclasses import replace

import numpy as np
import pytest

from nfws.farm.evaluate import nerf_table
from nfws.fields.shard import read_nerf_shard, write_nerf_shard, write_random_nerf_shard
from nfws.fields.spec import ArchSpec

SPEC = ArchSpec("M", "MLP", n_freqs=1, width=16, hidden_layers=1)


def write_shard(path, psnr, dropped):
    """A NeRF shard of random NeRFs with the given held-out PSNRs and dropped NeRFs."""
    write_random_nerf_shard(path, SPEC, len(psnr), seed=0)
    shard = read_nerf_shard(path, arrays=("psnr", "loss_curve"))
    write_nerf_shard(replace(shard, psnr=np.array(psnr, np.float32), dropped=dropped))


def test_counts_and_psnr_over_shards(tmp_path):
    write_shard(tmp_path / "a0.zarr", [20.0, 30.0],
                [{"object_id": "x", "reason": "diverged: weights grew 1e+07x"}])
    write_shard(tmp_path / "a1.zarr", [25.0], [])
    write_shard(tmp_path / "b0.zarr", [18.0, 22.0, 26.0], [])
    df = nerf_table({"MLP": [tmp_path / "a0.zarr", tmp_path / "a1.zarr"],
                     "HASH": [tmp_path / "b0.zarr"]}, tmp_path / "t.csv", tmp_path / "t.md")
    mlp, hash_ = df.set_index("arch").loc["MLP"], df.set_index("arch").loc["HASH"]
    assert (mlp.shards, mlp.n_nerfs, mlp.n_dropped) == (2, 3, 1)
    assert mlp.psnr_median == 25.0 and mlp.psnr_min == 20.0 and mlp.psnr_max == 30.0
    assert mlp.dropped == "x: diverged: weights grew 1e+07x"
    assert (hash_.n_nerfs, hash_.n_dropped, hash_.psnr_median) == (3, 0, 22.0)
    assert "# NeRF farm" in (tmp_path / "t.md").read_text()


def test_an_architecture_without_shards_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="architecture TRI has no shards"):
        nerf_table({"TRI": []}, tmp_path / "t.csv", tmp_path / "t.md")
