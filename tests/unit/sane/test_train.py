"""The SANE stage end to end on a tiny rotated dataset: dataset build, training with
checkpoint/resume, evaluation outputs."""
import math
from dataclasses import MISSING, asdict, fields

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from workflow_helpers import REPO
from nfws.checkpoint import Checkpoint
from nfws.data.sources import build_manifest
from nfws.fields.shard import NerfShard, write_nerf_shard
from nfws.fields.spec import ArchSpec
from nfws.fields.stacks import make_stack
from nfws.sane.models import ModelConfig
from nfws.sane.rotations import build_rotated_dataset
from nfws.sane.evaluate import chance_recall, evaluate_sane, load_model
from nfws.sane.train import TrainConfig, train_sane
from nfws.store import read_zarr

SPEC = ArchSpec("SANE-TINY", "HASH", hidden_layers=1, width=16, hash_levels=2, hash_log2_T=6,
                hash_features=2, hash_base_res=4)
DATA = {"objects_per_class": {"train": 3, "test": 1}, "n_rotations": 2,
        "distribution": "discrete", "discrete_step_deg": 90, "scale": 1.0, "resolution": 12,
        "n_views": 2}
CFG = {"model": {"d_model": 16, "heads": 2, "layers": 1, "d_latent": 8, "dropout": 0.1,
                 "n_pos": 2, "proj_hidden": 8, "proj_dim": 4, "rot_heads": 2},
       "tokens": {"n_points": 6, "points": "shared"},
       "train": {"steps": 6, "batch_size": 4, "lr": 1e-3, "weight_decay": 1e-2,
                 "grad_clip": 5.0, "tau": 0.1, "gamma": [0.4, 0.05, 0.53, 0.02],
                 "noise_sigma": 0.1, "permute": True, "rotation_jitter_deg": 0.1,
                 "log_every": 2, "eval_every": 3, "checkpoint_every": 2},
       "eval": {"ks": [1, 2], "tsne_perplexity": 3}}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("sane")
    section = {"source": "synthetic", "classes": ["chair", "table"], "objects_per_class": 5,
               "split_fractions": {"train": 0.6, "val": 0.2, "test": 0.2}}
    build_manifest("shapenet", section, 0, root / "manifest.parquet", root / "sources")
    table = build_rotated_dataset(root / "manifest.parquet", root / "views.zarr",
                                  root / "rot.parquet", DATA, seed=0, bbox=0.7)
    # NeRF weights stand in for fitted ones: training mechanics do not need fitted fields
    stack = make_stack(SPEC, len(table), torch.Generator().manual_seed(0))
    arrays = {k: v * 100 for k, v in stack.state_arrays().items()}
    write_nerf_shard(NerfShard(root / "nerfs.zarr", SPEC, table["object_id"].tolist(), arrays))
    return root, table


def test_rotated_dataset_rows_and_poses(dataset):
    root, table = dataset
    base = pd.read_parquet(root / "manifest.parquet").set_index("object_id")
    assert len(table) == 2 * (3 + 1) * 2
    assert table.groupby("split")["base_object_id"].nunique().to_dict() == {"test": 2, "train": 6}
    for row in table.itertuples():
        assert row.object_id == f"{row.base_object_id}_r{row.rotation}"
        assert base.loc[row.base_object_id, "split"] == row.split
        # discrete poses: turns about +y by multiples of 90°: q = (cos a/2, 0, sin a/2, 0)
        assert row.qx == 0 and row.qz == 0
        angle = math.degrees(2 * math.atan2(row.qy, row.qw))
        assert abs(angle / 90 - round(angle / 90)) < 1e-9
    poses = table.groupby("base_object_id")[["qw", "qy"]].apply(lambda g: len(g.drop_duplicates()))
    assert (poses == 2).all()
    arrays, attrs = read_zarr(root / "views.zarr")
    assert arrays["images"].shape == (len(table), 2, 12, 12, 4)
    assert list(arrays["object_ids"]) == table["object_id"].tolist()
    assert (arrays["images"][..., 3].reshape(len(table), -1).max(1) == 255).all()


def test_dataset_rejects_bad_config(dataset):
    root, _ = dataset
    with pytest.raises(ValueError, match="sane.data.distribution"):
        build_rotated_dataset(root / "manifest.parquet", root / "x.zarr", root / "x.parquet",
                              {**DATA, "distribution": "gaussian"}, 0, 0.7)
    with pytest.raises(ValueError, match="fewer than 9"):
        build_rotated_dataset(root / "manifest.parquet", root / "x.zarr", root / "x.parquet",
                              {**DATA, "objects_per_class": {"train": 9}}, 0, 0.7)


def test_resumed_training_matches_uninterrupted(dataset, tmp_path, monkeypatch):
    root, _ = dataset
    shards = [root / "nerfs.zarr"]
    log = train_sane(shards, root / "rot.parquet", CFG, tmp_path / "a.pt", 0, "cpu")
    assert log["train_step"] == [2, 4, 6] and log["test_step"] == [3, 6]
    assert all(np.isfinite(v) for k in ("train_total", "test_total") for v in log[k])

    real_save = Checkpoint.save

    def save_then_die(self, state):
        real_save(self, state)
        if state["step"] == 4:
            raise KeyboardInterrupt("simulated preemption")

    monkeypatch.setattr(Checkpoint, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_sane(shards, root / "rot.parquet", CFG, tmp_path / "b.pt", 0, "cpu")
    assert (tmp_path / "b.pt.progress.pt").exists() and not (tmp_path / "b.pt").exists()
    monkeypatch.setattr(Checkpoint, "save", real_save)
    train_sane(shards, root / "rot.parquet", CFG, tmp_path / "b.pt", 0, "cpu")
    a, _, rec_a = load_model(tmp_path / "a.pt")
    b, _, rec_b = load_model(tmp_path / "b.pt")
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(pa, pb, msg=name)
    assert rec_a["log"] == rec_b["log"]


def test_evaluation_writes_tables_and_plots(dataset, tmp_path):
    root, _ = dataset
    shards = [root / "nerfs.zarr"]
    train_sane(shards, root / "rot.parquet", CFG, tmp_path / "m.pt", 0, "cpu")
    df = evaluate_sane(tmp_path / "m.pt", shards, root / "rot.parquet", CFG, tmp_path / "eval", 0, "cpu")
    for name in ("sane_metrics.csv", "sane_metrics.md", "sane_metrics.json",
                 "sane_embeddings.parquet", "sane_loss_curves.png", "sane_tsne.png"):
        assert (tmp_path / "eval" / name).stat().st_size > 0
    assert set(df["split"]) == {"train", "test"} and "report" in df.columns
    rot = df[df["metric"].str.startswith("rotation")]
    assert ((rot["ours"] >= 0) & (rot["ours"] <= 180)).all()
    # NT-Xent of uninformative embeddings over N = 2 test objects: log(2N - 1)
    ntx_test = df[df["metric"].str.startswith("NT-Xent") & (df["split"] == "test")]
    assert float(ntx_test["baseline"].iloc[0]) == pytest.approx(math.log(3))
    emb = pd.read_parquet(tmp_path / "eval" / "sane_embeddings.parquet")
    assert len(emb) == 16 and len(emb["embedding"].iloc[0]) == 8


def test_chance_recall_closed_form():
    # one hit among 3 gallery items: recall@1 = 1/3, recall@2 = 2/3, recall@3 = 1
    assert chance_recall(3, np.array([1]), 1) == pytest.approx(100 / 3)
    assert chance_recall(3, np.array([1]), 2) == pytest.approx(200 / 3)
    assert chance_recall(3, np.array([1, 2]), 3) == pytest.approx(100.0)


def test_config_yaml_is_the_one_source_of_sane_settings():
    """No defaults in the code to drift from config.yaml; a missing key is named."""
    sane = yaml.safe_load((REPO / "config.yaml").read_text())["sane"]
    tc, mc = TrainConfig.from_cfg(sane), ModelConfig.from_dict(sane["model"])
    assert {**asdict(tc), "gamma": list(tc.gamma)} == {**sane["train"], **sane["tokens"]}
    assert mc.to_dict() == sane["model"]
    for config in (TrainConfig, ModelConfig):
        assert all(f.default is MISSING for f in fields(config)), config
    with pytest.raises(ValueError, match=r"sane.train: missing keys \['lr'\]"):
        TrainConfig.from_cfg({**sane, "train": {k: v for k, v in sane["train"].items()
                                                if k != "lr"}})
    with pytest.raises(ValueError, match=r"sane.tokens: missing keys \['points'\]"):
        TrainConfig.from_cfg({**sane, "tokens": {"n_points": 8}})
    with pytest.raises(ValueError, match=r"sane.model: missing keys \['rot_heads'\]"):
        ModelConfig.from_dict({k: v for k, v in sane["model"].items() if k != "rot_heads"})
