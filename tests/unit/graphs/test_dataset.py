"""Graph dataset, cached-topology batcher (checked against PyG's own collation), loader."""
import pandas as pd
import pytest
import torch
from torch_geometric.data import Batch

from nfws.fields.shard import write_random_nerf_shard
from nfws.fields.spec import ArchSpec
from nfws.graphs.dataset import GraphDataset, GraphLoader
from nfws.graphs.store import convert_shard
from nfws.store import write_parquet

SPECS = {
    "M": ArchSpec("M", "MLP", n_freqs=1, width=16, hidden_layers=2),
    "T": ArchSpec("T", "TRI", activation="sine", n_freqs=1, triplane_res=3, triplane_channels=2,
                  width=16, hidden_layers=1),
    "H": ArchSpec("H", "HASH", hash_levels=2, hash_log2_T=6, hash_features=2, hash_base_res=2,
                  width=16, hidden_layers=1),
}
N = 6


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One graph shard per architecture, each holding the same six objects."""
    tmp = tmp_path_factory.mktemp("graphs")
    shards = []
    for name, spec in SPECS.items():
        write_random_nerf_shard(tmp / f"{name}.zarr", spec, N, seed=0,
                                   object_ids=[f"obj_{i}" for i in range(N)])
        shards.append(tmp / "graphs" / name / "0.zarr")
        convert_shard(tmp / f"{name}.zarr", shards[-1])
    manifest = tmp / "manifest.parquet"
    classes = [3, 1, 4, 1, 5, 9, 2]
    write_parquet(pd.DataFrame({
        "object_id": [f"obj_{i}" for i in range(N)] + ["obj_unused"],
        "class_name": [f"c{k}" for k in classes], "class_index": classes,
        "split": ["train", "train", "test", "train", "val", "test", "train"],
        "source": ""}), manifest)
    return shards, manifest


def _assert_same_batch(ours, ref):
    for key in ("x", "edge_index", "edge_attr", "batch", "ptr", "y"):
        assert torch.equal(getattr(ours, key), getattr(ref, key)), key
    assert ours.object_id == ref.object_id and ours.arch == ref.arch
    assert ours.num_graphs == ref.num_graphs
    for got, want in zip(ours.to_data_list(), ref.to_data_list()):
        for key in ("x", "edge_index", "edge_attr", "y"):
            assert torch.equal(getattr(got, key), getattr(want, key)), key


def test_split_and_arch_selection_with_manifest_labels(store):
    shards, manifest = store
    ds = GraphDataset(shards, manifest, split="train", archs=["M", "H"], device="cpu")
    assert len(ds) == 2 * 3
    assert sorted(set(ds.records.arch)) == ["H", "M"]
    g = ds[ds.index_of("obj_3", "H")]
    assert g.y.tolist() == [1] and g.object_id == "obj_3" and g.arch == "H"
    assert g.edge_attr.shape == (g.edge_index.shape[1], 6)
    with pytest.raises(KeyError, match="obj_2"):
        ds.index_of("obj_2", "H")                 # a test object is not in the train split


def test_single_arch_batch_equals_pyg_collation(store):
    shards, manifest = store
    ds = GraphDataset(shards, manifest, archs=["H"], device="cpu")
    idx = [4, 0, 2]
    ours = ds.batch(idx)
    _assert_same_batch(ours, Batch.from_data_list([ds[i] for i in idx]))
    # graph 1 of the batch is row 0 of the shard: its first edge value starts its edge block
    first = ds.shards[0].read_values([0])[0]
    assert ours.edge_attr[ours.edge_attr.shape[0] // 3, 0] == first[0]
    again = ds.batch([1, 3, 5])                   # cached topology, new values
    _assert_same_batch(again, Batch.from_data_list([ds[i] for i in [1, 3, 5]]))


def test_mixed_arch_batch_equals_pyg_collation(store):
    shards, manifest = store
    ds = GraphDataset(shards, manifest, device="cpu")
    idx = [ds.index_of("obj_1", "M"), ds.index_of("obj_1", "T"), ds.index_of("obj_4", "H"),
           ds.index_of("obj_4", "M")]
    ours = ds.batch(idx)
    _assert_same_batch(ours, Batch.from_data_list([ds[i] for i in idx]))
    assert ours.arch == ["M", "T", "H", "M"] and ours.y.tolist() == [1, 1, 5, 5]
    ds.batcher.cache_size = 1                     # evicted patterns are rebuilt correctly
    for pattern in (idx[::-1], idx, idx[:2]):
        _assert_same_batch(ds.batch(pattern), Batch.from_data_list([ds[i] for i in pattern]))


def test_loader_covers_each_graph_once_and_is_seeded(store):
    shards, manifest = store
    ds = GraphDataset(shards, manifest, device="cpu")   # 18 graphs
    seen = [(o, a) for b in GraphLoader(ds, 4, seed=7) for o, a in zip(b.object_id, b.arch)]
    assert len(seen) == 18 and len(set(seen)) == 18
    order = lambda seed: [b.object_id for b in GraphLoader(ds, 4, seed=seed)]  # noqa: E731
    assert order(7) == order(7) and order(7) != order(8)
    assert [b.num_graphs for b in GraphLoader(ds, 4, drop_last=True)] == [4, 4, 4, 4]
    assert [b.num_graphs for b in GraphLoader(ds, 4, shuffle=False)] == [4, 4, 4, 4, 2]


def test_bad_inputs_are_named(store, tmp_path):
    shards, manifest = store
    with pytest.raises(FileNotFoundError, match="missing.zarr"):
        GraphDataset([tmp_path / "missing.zarr"], manifest)
    with pytest.raises(FileNotFoundError, match="nomanifest.parquet"):
        GraphDataset(shards, tmp_path / "nomanifest.parquet")
    small = tmp_path / "small.parquet"
    write_parquet(pd.DataFrame({"object_id": ["obj_0"], "class_name": ["c0"], "class_index": [0],
                                "split": ["train"], "source": [""]}), small)
    with pytest.raises(ValueError, match=r"0\.zarr.*obj_1.*not in the manifest"):
        GraphDataset(shards, small)
    twice = tmp_path / "twice.parquet"
    write_parquet(pd.concat([pd.read_parquet(small)] * 2), twice)
    with pytest.raises(ValueError, match=r"twice\.parquet: duplicate object ids \['obj_0'\]"):
        GraphDataset(shards, twice)
    with pytest.raises(ValueError, match=r"architectures \['X'\]"):
        GraphDataset(shards, manifest, archs=["M", "X"])
    with pytest.raises(ValueError, match="no graphs of split 'nope'"):
        GraphDataset(shards, manifest, split="nope")
    with pytest.raises(ValueError, match="batch_size"):
        GraphLoader(GraphDataset(shards[:1], manifest), 0)
