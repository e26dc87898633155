"""Reference-centred embeddings: the reference is every NeRF's start, and centring
subtracts exactly its embedding."""
import numpy as np
import pandas as pd
import pytest
import torch

from nfws.fields.shard import NerfShard, write_nerf_shard
from nfws.fields.spec import ArchSpec
from nfws.fields.stacks import init_params, initial_stack
from nfws.gmn.jobs import embed_gmn
from nfws.gmn.models import GMNEncoder
from nfws.gmn.reference import reference_values
from nfws.graphs.store import convert_shard
from nfws.graphs.topology import values_from_weights
from nfws.store import save_torch, write_parquet

SPEC = ArchSpec("MLP", "MLP", hidden_layers=2, width=16, n_freqs=1)
OBJECTS = ["a", "b", "c", "d"]
ENCODER = {"hidden": 8, "layers": 2, "d_embed": 6, "value_norm": "group", "pool": "groups",
           "layer_code": "role"}


def test_reference_is_the_start_of_every_nerf_under_shared_init():
    start = initial_stack(SPEC, OBJECTS, "shared", 5).state_arrays()
    values = values_from_weights(SPEC, start)
    ref = reference_values(SPEC, 5)
    assert all(np.array_equal(row, ref) for row in values)
    assert not np.array_equal(reference_values(SPEC, 6), ref)


@pytest.fixture
def shard_and_model(tmp_path):
    """A graph shard whose NeRF 'a' is the reference (seed 5) and the others random, and a
    model file of an untrained encoder."""
    params = {k: v.numpy() for k, v in init_params(SPEC, len(OBJECTS), torch.Generator().manual_seed(1)).items()}
    for k, v in initial_stack(SPEC, ["a"], "shared", 5).state_arrays().items():
        params[k][0] = v[0]
    nerf = tmp_path / "nerf.zarr"
    write_nerf_shard(NerfShard(nerf, SPEC, OBJECTS, params, psnr=np.full(4, 30.0, np.float32),
                               loss_curve=np.zeros((4, 2), np.float32),
                               sample_box=np.tile(np.array([[-0.7] * 3, [0.7] * 3], np.float32), (4, 1, 1)),
                               config_hash="test"))
    graph = tmp_path / "graphs.zarr"
    convert_shard(nerf, graph)
    manifest = tmp_path / "manifest.parquet"
    write_parquet(pd.DataFrame({"object_id": OBJECTS, "class_name": ["x", "y", "x", "y"], "class_index": [0, 1, 0, 1],
                                "split": ["train", "train", "test", "test"], "source": "none"}), manifest)
    torch.manual_seed(0)
    model = tmp_path / "model.pt"
    save_torch({"config": {"encoder": {"kind": "gmn", **ENCODER}},
                "encoder": GMNEncoder(**ENCODER).state_dict()}, model)
    return graph, manifest, model


def _embeddings(path):
    return np.stack(pd.read_parquet(path).sort_values("object_id")["emb"].to_numpy())


def test_centring_subtracts_the_reference_embedding(tmp_path, shard_and_model):
    graph, manifest, model = shard_and_model
    embed_gmn(model, {"MLP": [graph]}, manifest, tmp_path / "raw", 2, "cpu", "none")
    embed_gmn(model, {"MLP": [graph]}, manifest, tmp_path / "centred", 2, "cpu", "init", seed=5)
    raw, centred = _embeddings(tmp_path / "raw" / "MLP.parquet"), _embeddings(tmp_path / "centred" / "MLP.parquet")
    assert np.abs(raw[0]).max() > 1e-3
    assert np.allclose(centred[0], 0.0, atol=1e-6)          # 'a' is the reference itself
    assert np.allclose(centred, raw - raw[0], atol=1e-6)    # one vector off every embedding


def test_unknown_reference_is_refused_by_its_config_key(tmp_path, shard_and_model):
    graph, manifest, model = shard_and_model
    with pytest.raises(ValueError, match="gmn.embed_reference.*'mean'"):
        embed_gmn(model, {"MLP": [graph]}, manifest, tmp_path / "x", 2, "cpu", "mean")
