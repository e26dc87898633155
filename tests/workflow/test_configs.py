"""The full-scale configs in workflow/configs/ against tiny fake real-data trees.

Each config runs its objects checkpoint for real on the fake tree (it scans the real
on-disk layout and splits it), then dry-runs the whole DAG, which the checkpoint has
opened up to every NeRF shard. (Reading the views of each layout is unit-tested in
test_shapenet_render.py; running it here would double this file's time.)
"""
import pandas as pd
import pytest
import yaml

import fake_data
from workflow_helpers import REPO, job_stats, run_snakemake

CONFIGS = REPO / "workflow" / "configs"
#: The fake 3D trees hold these two classes (fake_data.SYNSETS).
FAKE_CLASSES = ["airplane", "car"]


def overlay(tmp_path, settings):
    path = tmp_path / "fake_root.yaml"
    path.write_text(yaml.safe_dump(settings))
    return str(path)


def run_then_dry_run(workdir, configfiles, targets):
    """Build ``targets`` for real, then dry-run ``all``; (job stats of the dry run, text)."""
    built = run_snakemake(workdir, "--cores", "2", *targets, "--configfile", *configfiles,
                          timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    dry = run_snakemake(workdir, "-n", "all", "--configfile", *configfiles)
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
    return job_stats(dry.stdout + dry.stderr)


def expected_nerf_jobs(config_paths):
    merged = yaml.safe_load((REPO / "config.yaml").read_text())
    for path in config_paths:
        merged = _merge(merged, yaml.safe_load(path.read_text()))
    nerf = merged["nerf"]
    return len(nerf["train_archs"]) + len(nerf["unseen_archs"])


def _merge(base, over):
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(
            out.get(key), dict) else value
    return out


@pytest.mark.parametrize("name", ["shapenet_render", "nf2vec"])
def test_3d_config_on_fake_tree(tmp_path, name):
    if name == "shapenet_render":
        root = fake_data.disn_tree(tmp_path / "disn", objects_per_synset=10)
        data = {"root": str(root), "classes": FAKE_CLASSES}
        configs = [CONFIGS / "shapenet_render.yaml"]
    else:
        root, splits = fake_data.nf2vec_tree(tmp_path / "nf2vec", objects_per_synset=3)
        data = {"root": str(root), "split_files": str(splits), "classes": FAKE_CLASSES}
        configs = [CONFIGS / "shapenet_render.yaml", CONFIGS / "nf2vec.yaml"]
    files = [str(c) for c in configs] + [overlay(tmp_path, {"data": {"shapenet": data}})]
    workdir = tmp_path / "run"
    stats = run_then_dry_run(workdir, files, ["results/data/shapenet/manifest.parquet"])

    manifest = pd.read_parquet(workdir / "results/data/shapenet/manifest.parquet")
    assert sorted(manifest["class_name"].unique()) == FAKE_CLASSES
    assert set(manifest["split"]) == {"train", "val", "test"}
    assert all(str(root) in s for s in manifest["source"])
    # 20 or 6 objects, shard size 64: one shard per architecture, each trained once.
    assert stats.get("train_nerfs") == expected_nerf_jobs(configs)
    assert {"graphs", "train_encoder", "gmn_tables"} <= set(stats)
    assert "views_store" in stats and "render_objects" not in stats  # real views: no render


def test_ffhq_config_on_fake_image_folder(tmp_path):
    root, _ = fake_data.image_folder(tmp_path / "ffhq", count=12)
    files = [str(CONFIGS / "ffhq.yaml"),
             overlay(tmp_path, {"data": {"faces": {"root": str(root), "count": 12}}})]
    workdir = tmp_path / "run"
    stats = run_then_dry_run(workdir, files, ["results/data/faces/manifest.parquet"])
    manifest = pd.read_parquet(workdir / "results/data/faces/manifest.parquet")
    assert len(manifest) == 12 and set(manifest["split"]) == {"train", "test"}
    assert {"lora_targets", "base_field", "fit_instances", "train_diffusion"} <= set(stats)
    assert "images_store" in stats


@pytest.mark.parametrize("single_category", [False, True])
def test_occupancy_configs_on_fake_onet_tree(tmp_path, single_category):
    root = fake_data.onet_tree(tmp_path / "onet", objects_per_synset=4)
    configs = [CONFIGS / "shapenet_occupancy.yaml"]
    if single_category:
        configs.append(CONFIGS / "shapenet_airplane.yaml")
    shapes = {"root": str(root), "split_fractions": {"train": 0.5, "val": 0.0, "test": 0.5}}
    files = [str(c) for c in configs] + [
        overlay(tmp_path, {"lora": {"datasets": {"shapenet": {"shapes": shapes}}}})]
    workdir = tmp_path / "run"
    stats = run_then_dry_run(workdir, files, ["results/lora/shapenet/manifest.parquet"])
    manifest = pd.read_parquet(workdir / "results/lora/shapenet/manifest.parquet")
    expected = ["airplane"] if single_category else FAKE_CLASSES
    assert sorted(manifest["class_name"].unique()) == expected
    assert set(manifest["split"]) == {"train", "test"}
    assert all(s.startswith(str(root)) for s in manifest["source"])
    assert {"lora_targets", "base_field", "fit_instances", "train_diffusion"} <= set(stats)


def test_transfer_scale_overlay_builds_one_family(tmp_path):
    """The transfer-scale overlay asks for Table 5 of the MLP family alone, at 40 objects a
    class, in its own results folder: NeRFs of the parent (train and test objects) and of
    its two variants (test objects), one L_R encoder, one embedding pass, one classifier."""
    configs = [str(CONFIGS / "transfer_scale.yaml")]
    root = "results/transfer_scale"
    workdir = tmp_path / "run"
    built = run_snakemake(workdir, "--cores", "2", f"{root}/data/shapenet/manifest.parquet",
                          "--configfile", *configs, timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    dry = run_snakemake(workdir, "-n", f"{root}/gmn/L_R/MLP/classification_single.parquet",
                        "--configfile", *configs)
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
    stats = job_stats(dry.stdout + dry.stderr)

    merged = _merge(yaml.safe_load((REPO / "config.yaml").read_text()),
                    yaml.safe_load((CONFIGS / "transfer_scale.yaml").read_text()))
    size, variants = merged["nerf"]["shard_size"], len(merged["nerf"]["unseen_archs"])
    manifest = pd.read_parquet(workdir / root / "data/shapenet/manifest.parquet")
    assert (manifest.groupby("class_name").size() == merged["data"]["shapenet"]["objects_per_class"]).all()
    assert sorted(manifest["class_name"].unique()) == sorted(merged["data"]["shapenet"]["classes"])
    n_test = int((manifest["split"] == "test").sum())
    n_train = int((manifest["split"] == "train").sum())
    # shards of at most shard_size NeRFs: the parent on train + test, each variant on test only
    shards = -(-(n_train + n_test) // size) + variants * -(-n_test // size)
    assert stats.get("train_nerfs") == stats.get("graphs") == shards
    assert stats.get("train_encoder") == stats.get("embed") == stats.get("classify_single") == 1
    assert not {"classify_all", "retrieve", "baseline", "fit_instances"} & set(stats)
