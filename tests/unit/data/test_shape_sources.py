"""Track B's 3D manifest: data-manifest subsets, occupancy-network folders, mesh files."""
import numpy as np
import pandas as pd
import pytest
import torch

from nfws.data.shape_sources import build_shape_manifest
from nfws.data.targets import read_shape
from nfws.store import read_parquet, write_parquet

AIRPLANE, CAR = "02691156", "02958343"
SECTION = dict(source="manifest", root=None, classes=None, max_objects_per_class=None,
               split_fractions={"train": 0.5, "val": 0.0, "test": 0.5})


def _data_manifest(tmp_path):
    rows = [(f"{c}_{i}", c, ci, s, f"/src/{c}_{i}.json") for c, ci in (("airplane", 0), ("car", 3))
            for i, s in enumerate(["train", "train", "val", "test"])]
    df = pd.DataFrame(rows, columns=["object_id", "class_name", "class_index", "split", "source"])
    write_parquet(df, tmp_path / "data.parquet")
    return tmp_path / "data.parquet"


def test_single_category_subset_of_the_data_manifest_keeps_splits(tmp_path):
    data = _data_manifest(tmp_path)
    df = build_shape_manifest(dict(SECTION, classes=["airplane"]), 0, tmp_path / "m.parquet", data)
    assert df["object_id"].tolist() == [f"airplane_{i}" for i in range(4)]
    assert df["split"].tolist() == ["train", "train", "val", "test"]
    assert read_parquet(tmp_path / "m.parquet")["source"].iloc[0] == "/src/airplane_0.json"
    capped = build_shape_manifest(dict(SECTION, max_objects_per_class=1), 0,
                                  tmp_path / "c.parquet", data)
    assert len(capped) == 6                      # one per class and split present (3 x 2)
    with pytest.raises(ValueError, match="unknown class names"):
        build_shape_manifest(dict(SECTION, classes=["dragon"]), 0, tmp_path / "x.parquet", data)
    with pytest.raises(ValueError, match="source: must be one of"):
        build_shape_manifest(dict(SECTION, source="ply"), 0, tmp_path / "x.parquet", data)


def _onet_object(folder, seed):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-0.55, 0.55, (64, 3)).astype(np.float16)
    np.savez(folder / "points.npz", points=pts,
             occupancies=np.packbits(np.linalg.norm(pts, axis=1) < 0.3))
    np.savez(folder / "pointcloud.npz", points=rng.normal(size=(32, 3)).astype(np.float32))


def test_occupancy_network_root_with_split_lists_reads_through_read_shape(tmp_path):
    root = tmp_path / "onet"
    for synset, ids in ((AIRPLANE, ["a", "b", "c"]), (CAR, ["d", "e"])):
        for k, i in enumerate(ids):
            _onet_object(root / synset / i, k)
    (root / AIRPLANE / "train.lst").write_text("a\nb\n")
    (root / AIRPLANE / "test.lst").write_text("c\n")
    (root / CAR / "train.lst").write_text("d\n")
    (root / CAR / "test.lst").write_text("e\n")
    section = dict(SECTION, source="onet", root=str(root))
    df = build_shape_manifest(section, 0, tmp_path / "m.parquet")
    assert df["object_id"].tolist() == [f"{AIRPLANE}_a", f"{AIRPLANE}_b", f"{AIRPLANE}_c",
                                        f"{CAR}_d", f"{CAR}_e"]
    assert df["split"].tolist() == ["train", "train", "test", "train", "test"]
    assert df["class_index"].tolist() == [0, 0, 0, 3, 3]
    cfg = dict(n_uniform=20, n_surface=10, sigma=0.01, n_surface_gt=16)
    points, occ, surface = read_shape(df["source"][0], cfg, torch.Generator().manual_seed(0))
    assert points.shape == (30, 3) and surface.shape == (16, 3)
    assert np.array_equal(occ, np.linalg.norm(points, axis=1) < 0.3)
    (root / CAR / "test.lst").write_text("")
    with pytest.raises(ValueError, match="in no split list"):
        build_shape_manifest(section, 0, tmp_path / "m.parquet")
    (root / CAR / "f").mkdir()
    with pytest.raises(FileNotFoundError, match="without"):
        build_shape_manifest(section, 0, tmp_path / "m.parquet")


def _cube_off(path, scale):
    v = [(x * scale, y * scale, z * scale) for x in (0, 1) for y in (0, 1) for z in (0, 1)]
    quads = [(0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5)]
    path.write_text("OFF\n8 6 0\n" + "".join(f"{a} {b} {c}\n" for a, b, c in v)
                    + "".join("4 " + " ".join(map(str, q)) + "\n" for q in quads))


def test_mesh_root_gets_seeded_stratified_splits(tmp_path):
    root = tmp_path / "meshes"
    (root / AIRPLANE).mkdir(parents=True)
    for i in range(4):
        _cube_off(root / AIRPLANE / f"m{i}.off", 1 + i)
    (root / AIRPLANE / "notes.txt").write_text("not a mesh")
    section = dict(SECTION, source="meshes", root=str(root))
    a = build_shape_manifest(section, 7, tmp_path / "a.parquet")
    b = build_shape_manifest(section, 7, tmp_path / "b.parquet")
    assert len(a) == 4 and a.equals(b)
    assert sorted(a["split"]) == ["test", "test", "train", "train"]
    cfg = dict(n_uniform=50, n_surface=10, sigma=0.0, n_surface_gt=8)
    points, occ, _ = read_shape(a["source"][0], cfg, torch.Generator().manual_seed(0))
    assert (occ == (np.abs(points) < 0.5).all(1)).mean() > 0.95
    with pytest.raises(FileNotFoundError, match="root"):
        build_shape_manifest(dict(section, root=str(tmp_path / "none")), 0, tmp_path / "x.parquet")
    with pytest.raises(ValueError, match="train and test"):
        build_shape_manifest(dict(section, split_fractions={"train": 1.0, "val": 0.0, "test": 0.0}),
                             0, tmp_path / "x.parquet")
