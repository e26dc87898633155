"""Graph shard store: conversion, reading back, and bad NeRF shards."""
import numpy as np
import pytest

from nfws.fields.shard import write_random_nerf_shard
from nfws.fields.spec import ArchSpec
from nfws.graphs.store import convert_shard, open_graph_shard
from nfws.graphs.topology import weights_from_values
from nfws.store import read_zarr, write_zarr

SPEC = ArchSpec("TRI-S", "TRI", activation="sine", n_freqs=1, triplane_res=4,
                triplane_channels=2, width=16, hidden_layers=2)


def _shard(tmp_path, spec=SPEC, n=5, name="nerf.zarr"):
    path = tmp_path / name
    ids = write_random_nerf_shard(path, spec, n, seed=0)
    return path, ids


def test_convert_shard_stores_topology_once_and_values_per_nerf(tmp_path):
    src, ids = _shard(tmp_path)
    out = tmp_path / "graphs" / "TRI-S" / "0.zarr"
    summary = convert_shard(src, out)
    weights, _ = read_zarr(src, list(SPEC.param_shapes()))
    arrays, attrs = read_zarr(out)
    # 3·4·4 spatial + (6 freq + 2 channels → 16 inputs) + 2·16 hidden + 16 outputs.
    n_nodes = 48 + 16 + 32 + 16
    # 3·2·4·4 tri-plane + 16·16 + 16·16 + 16·16 weights.
    n_edges = 96 + 256 + 256 + 256
    assert summary == {"arch": "TRI-S", "n_nerfs": 5, "n_nodes": n_nodes, "n_edges": n_edges}
    assert arrays["x"].shape == (n_nodes, 3) and arrays["edge_index"].shape == (2, n_edges)
    assert arrays["edge_attr"].shape == (n_edges, 5) and arrays["values"].shape == (5, n_edges)
    assert [str(o) for o in arrays["object_ids"].tolist()] == ids
    assert attrs["arch"] == SPEC.to_dict() and attrs["source_shard"] == str(src)
    assert attrs["nerf_config_hash"] == "synthetic" and attrs["dropped"] == []
    back = weights_from_values(SPEC, arrays["values"])
    for k, v in weights.items():
        assert np.array_equal(back[k], v)


def test_read_values_returns_requested_rows_in_order(tmp_path):
    src, ids = _shard(tmp_path)
    convert_shard(src, tmp_path / "g.zarr")
    shard = open_graph_shard(tmp_path / "g.zarr")
    weights, _ = read_zarr(src, ["triplane"])
    rows = shard.read_values(np.array([3, 0, 3]))
    first_edge_param = weights["triplane"][:, 0, 0, 0, 0]   # tri-plane edges come first
    assert rows[:, 0].tolist() == first_edge_param[[3, 0, 3]].tolist()
    assert shard.arch == "TRI-S" and shard.object_ids.tolist() == ids


def test_missing_shard_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.zarr"):
        convert_shard(tmp_path / "nope.zarr", tmp_path / "g.zarr")


def test_wrong_shape_names_shard_and_array(tmp_path):
    other = ArchSpec("TRI-S", "TRI", activation="sine", n_freqs=1, triplane_res=4,
                     triplane_channels=2, width=32, hidden_layers=2)
    src, _ = _shard(tmp_path, spec=other)
    arrays, attrs = read_zarr(src)
    attrs["arch"] = SPEC.to_dict()            # shard claims a spec its weights do not match
    bad = tmp_path / "bad.zarr"
    write_zarr(bad, arrays, attrs)
    with pytest.raises(ValueError, match=r"bad\.zarr.*mlp\.0.*\[n, 16, 16\]"):
        convert_shard(bad, tmp_path / "g.zarr")
    assert not (tmp_path / "g.zarr").exists()


def _drop_mlp1(arrays, attrs, ids):
    del arrays["mlp.1"]


def _nan_weight(arrays, attrs, ids):
    arrays["mlp.2"][3, 1, 1] = np.nan


def _repeated_id(arrays, attrs, ids):
    arrays["object_ids"] = np.array([ids[0]] * len(ids))


def _no_arch(arrays, attrs, ids):
    del attrs["arch"]


@pytest.mark.parametrize("spoil, message", [
    (_drop_mlp1, r"missing parameter array 'mlp\.1'"),
    (_nan_weight, r"non-finite.*{id3}"),
    (_repeated_id, r"unique object_ids"),
    (_no_arch, r"'arch'"),
])
def test_a_bad_shard_is_refused_naming_it_and_what_is_wrong(tmp_path, spoil, message):
    src, ids = _shard(tmp_path)
    arrays, attrs = read_zarr(src)
    spoil(arrays, attrs, ids)
    write_zarr(tmp_path / "bad.zarr", arrays, attrs)
    with pytest.raises(ValueError, match=r"bad\.zarr.*" + message.format(id3=ids[3])):
        convert_shard(tmp_path / "bad.zarr", tmp_path / "g.zarr")
    assert not (tmp_path / "g.zarr").exists()


def _write_graph_store(path, arrays, attrs):
    whole = {k: arrays[k].shape for k in ("x", "edge_index", "edge_attr")}
    write_zarr(path, arrays, attrs, chunks=whole)


def test_graph_shard_with_foreign_topology_is_rejected(tmp_path):
    src, _ = _shard(tmp_path)
    convert_shard(src, tmp_path / "g.zarr")
    arrays, attrs = read_zarr(tmp_path / "g.zarr")
    arrays["edge_index"] = arrays["edge_index"][:, ::-1].copy()
    _write_graph_store(tmp_path / "stale.zarr", arrays, attrs)
    with pytest.raises(ValueError, match=r"stale\.zarr.*topology differs"):
        open_graph_shard(tmp_path / "stale.zarr")
    arrays, attrs = read_zarr(tmp_path / "g.zarr")
    arrays["values"] = arrays["values"][:, :-1].copy()
    _write_graph_store(tmp_path / "short.zarr", arrays, attrs)
    with pytest.raises(ValueError, match=r"short\.zarr.*values has shape"):
        open_graph_shard(tmp_path / "short.zarr")
