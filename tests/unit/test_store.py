"""Atomic writers: a failed write leaves nothing behind, a good one replaces the old."""
import numpy as np
import pandas as pd
import pytest
import torch

from nfws.store import (atomic_path, config_hash, load_torch, open_zarr, read_parquet,
                        read_zarr, save_torch, write_parquet, write_zarr)


def test_zarr_round_trip_and_attrs(tmp_path):
    p = tmp_path / "s.zarr"
    w = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    write_zarr(p, {"w": w, "ids": np.array(["a", "b"])}, {"arch": {"name": "MLP"}})
    arrays, attrs = read_zarr(p)
    np.testing.assert_array_equal(arrays["w"], w)
    assert list(arrays["ids"]) == ["a", "b"]
    assert attrs["arch"] == {"name": "MLP"} and "nfws_version" in attrs
    assert open_zarr(p)["w"].chunks == (1, 3, 4)  # one chunk per item


def test_crash_mid_write_leaves_old_output_and_no_temporary(tmp_path):
    p = tmp_path / "s.zarr"
    write_zarr(p, {"w": np.zeros(3, np.float32)})
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(p) as tmp:
            tmp.mkdir()
            (tmp / "partial").write_text("x")
            raise RuntimeError("boom")
    np.testing.assert_array_equal(read_zarr(p)[0]["w"], np.zeros(3))
    assert [c.name for c in tmp_path.iterdir()] == ["s.zarr"]


def test_missing_store_and_missing_array_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.zarr"):
        open_zarr(tmp_path / "nothing.zarr")
    write_zarr(tmp_path / "a.zarr", {"x": np.zeros(2)})
    with pytest.raises(ValueError, match=r"a.zarr: missing arrays \['y'\]"):
        read_zarr(tmp_path / "a.zarr", ["y"])


def test_parquet_and_torch(tmp_path):
    df = pd.DataFrame({"a": [1, 2]})
    write_parquet(df, tmp_path / "m.parquet")
    with pytest.raises(ValueError, match="missing columns"):
        read_parquet(tmp_path / "m.parquet", ["b"])
    save_torch({"w": torch.ones(2)}, tmp_path / "m.pt")
    assert torch.equal(load_torch(tmp_path / "m.pt")["w"], torch.ones(2))


def test_config_hash_ignores_key_order():
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})
