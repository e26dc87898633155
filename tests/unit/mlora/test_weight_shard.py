"""Weight shards: written and read back whole, joined in order, incomplete ones refused by name."""
import numpy as np
import pytest

from nfws.mlora.weight_shard import (ARRAYS, WeightShard, read_weight_shard, read_weight_shards,
                                     write_weight_shard)
from nfws.store import open_zarr, write_zarr
from weight_shards import fake_weight_shard


def test_round_trip_keeps_every_array_and_attr(tmp_path):
    rng = np.random.default_rng(0)
    shard = fake_weight_shard(tmp_path / "0.zarr", rng.normal(size=(3, 5)), ["a", "b", "c"],
                              score=[1.0, 2.0, 3.0], labels=[0, 1, 0],
                              dropped=[{"object_id": "d", "reason": "non-finite loss"}])
    back = read_weight_shard(tmp_path / "0.zarr")
    for name in ARRAYS:
        assert np.array_equal(getattr(back, name), getattr(shard, name)), name
    assert back.attrs == {"nfws_version": back.attrs["nfws_version"], **shard.attrs}
    assert open_zarr(tmp_path / "0.zarr")["weights"].chunks == (3, 5)   # one chunk


def test_shards_join_in_order_with_every_dropped_instance(tmp_path):
    w = np.arange(20, dtype=np.float32).reshape(5, 4)
    fake_weight_shard(tmp_path / "0.zarr", w[:2], ["a", "b"], dropped=[{"object_id": "x"}])
    fake_weight_shard(tmp_path / "1.zarr", w[2:], ["c", "d", "e"], score=[7, 8, 9],
                      dropped=[{"object_id": "y"}])
    joined = read_weight_shards([tmp_path / "0.zarr", tmp_path / "1.zarr"])
    assert np.array_equal(joined.weights, w) and list(joined.object_ids) == list("abcde")
    assert joined.score.tolist() == [0, 0, 7, 8, 9] and joined.loss_curve.shape == (5, 1)
    assert joined.frozen.shape == (4,) and joined.attrs["dropped"] == [{"object_id": "x"},
                                                                      {"object_id": "y"}]
    fake_weight_shard(tmp_path / "2.zarr", w[:1], ["f"], config_hash="other")
    with pytest.raises(ValueError, match=r"2\.zarr: \['config_hash'\] differ from those of "
                                         r".*0\.zarr"):
        read_weight_shards([tmp_path / "0.zarr", tmp_path / "2.zarr"])
    with pytest.raises(ValueError, match="no shard paths"):
        read_weight_shards([])


def test_missing_array_attr_or_mismatched_weights_are_named(tmp_path):
    shard = fake_weight_shard(tmp_path / "0.zarr", np.zeros((2, 3)), ["a", "b"])
    arrays = {name: getattr(shard, name) for name in ARRAYS if name != "score"}
    write_zarr(tmp_path / "noscore.zarr", arrays, shard.attrs)
    with pytest.raises(ValueError, match=r"noscore\.zarr: missing arrays \['score'\]"):
        read_weight_shard(tmp_path / "noscore.zarr")
    write_zarr(tmp_path / "nolayout.zarr", {**arrays, "score": shard.score},
               {k: v for k, v in shard.attrs.items() if k != "layout"})
    with pytest.raises(ValueError, match=r"nolayout\.zarr: weight shard attrs lack \['layout'\]"):
        read_weight_shard(tmp_path / "nolayout.zarr")
    with pytest.raises(ValueError, match=r"x\.zarr: weight shard attrs lack \['kind'\]"):
        write_weight_shard(tmp_path / "x.zarr", WeightShard(**{
            **shard.__dict__, "attrs": {k: v for k, v in shard.attrs.items() if k != "kind"}}))
    fake_weight_shard(tmp_path / "wide.zarr", np.zeros((2, 3)), ["a", "b"],
                      layout=[{"name": "w", "shape": [2, 2], "role": "weight"}])
    with pytest.raises(ValueError, match=r"wide\.zarr: weights shape \(2, 3\) does not match "
                                         r"2 object ids x 4 layout values"):
        read_weight_shard(tmp_path / "wide.zarr")
