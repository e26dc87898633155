"""Fan-out of NeRF shards: who gets trained where."""
import pandas as pd
import pytest

from nfws.plan import arch_names, arch_objects, shard_members

CFG = {
    "train_archs": ["MLP", "TRI"],
    "unseen_archs": ["MLP-2L"],
    "train_arch_splits": ["train", "val", "test"],
    "unseen_splits": ["test"],
    "architectures": {"MLP": {}, "TRI": {}, "MLP-2L": {}},
    "shard_size": 4,
}


def manifest(n_train=7, n_val=2, n_test=3):
    rows = [(f"tr{i}", "train") for i in range(n_train)]
    rows += [(f"va{i}", "val") for i in range(n_val)] + [(f"te{i}", "test") for i in range(n_test)]
    return pd.DataFrame(rows, columns=["object_id", "split"])


def test_training_archs_cover_every_split_and_unseen_only_test():
    m = manifest()
    assert len(arch_objects(m, "MLP", CFG)) == 12
    assert arch_objects(m, "MLP-2L", CFG) == ["te0", "te1", "te2"]


def test_shards_are_balanced_and_partition_the_objects():
    shards = shard_members(manifest(), "TRI", CFG)  # 12 objects, size 4 -> 3 shards of 4
    assert list(shards) == ["000", "001", "002"]
    assert [len(v) for v in shards.values()] == [4, 4, 4]
    m = manifest(n_train=8)  # 13 objects -> 4 shards: sizes 3,3,3,4 in some order
    sizes = sorted(len(v) for v in shard_members(m, "TRI", CFG).values())
    assert sizes == [3, 3, 3, 4]
    members = sum(shard_members(m, "TRI", CFG).values(), [])
    assert sorted(members) == sorted(m["object_id"]) and len(set(members)) == 13


def test_unknown_or_repeated_arch_names_the_key():
    with pytest.raises(ValueError, match="unknown architectures"):
        arch_names({**CFG, "unseen_archs": ["NOPE"]})
    with pytest.raises(ValueError, match="listed twice"):
        arch_names({**CFG, "unseen_archs": ["MLP"]})


def test_training_archs_get_nerfs_of_the_configured_splits_which_need_train_and_test():
    m = manifest()
    no_val = {**CFG, "train_arch_splits": ["train", "test"]}
    assert arch_objects(m, "MLP", no_val) == sorted([f"tr{i}" for i in range(7)] + ["te0", "te1", "te2"])
    with pytest.raises(ValueError, match=r"nerf.train_arch_splits: .*\['test'\] missing"):
        arch_objects(m, "MLP", {**CFG, "train_arch_splits": ["train", "val"]})
