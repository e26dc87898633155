import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nfws.data import manifest as M
from nfws.data import synthetic3d
from nfws.data.sources import build_manifest

FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}


def objects(sizes: dict[str, int]) -> pd.DataFrame:
    rows = [{"object_id": f"{name}_{k:03d}", "class_name": name,
             "class_index": M.CLASS_INDEX[name], "source": f"/x/{name}/{k}"}
            for name, n in sizes.items() for k in range(n)]
    return pd.DataFrame(rows)


def test_class_table_matches_spec_order():
    assert M.CLASS_NAMES[0] == "airplane" and M.CLASS_NAMES[12] == "watercraft"
    assert M.SYNSET_TO_NAME["03001627"] == "chair"
    assert M.CLASS_INDEX["table"] == 10
    assert len(set(M.SYNSET_TO_NAME)) == 13


@pytest.mark.parametrize("n, fractions, expected", [
    (10, FRACTIONS, (6, 2, 2)),
    # 7·(.6,.2,.2) = 4.2, 1.4, 1.4 → floors 4,1,1; one left, val wins the .4 tie
    (7, FRACTIONS, (4, 2, 1)),
    # 4 → 2.4, .8, .8 → 2,0,0; two left go to val and test
    (4, FRACTIONS, (2, 1, 1)),
    (5, {"train": 0.8, "val": 0.0, "test": 0.2}, (4, 0, 1)),
    (3, {"train": 1.0, "val": 0.0, "test": 0.0}, (3, 0, 0)),
])
def test_split_counts_hand_computed(n, fractions, expected):
    counts = M.split_counts(n, fractions)
    assert (counts["train"], counts["val"], counts["test"]) == expected


def test_stratified_split_counts_per_class():
    df = objects({"airplane": 10, "car": 7, "lamp": 4})
    df["split"] = M.stratified_splits(df, FRACTIONS, seed=0, key="data.shapenet")
    table = df.groupby(["class_name", "split"]).size().unstack(fill_value=0)
    assert table.loc["airplane"].to_dict() == {"train": 6, "val": 2, "test": 2}
    assert table.loc["car"].to_dict() == {"train": 4, "val": 2, "test": 1}
    assert table.loc["lamp"].to_dict() == {"train": 2, "val": 1, "test": 1}


def test_stratified_split_seeded():
    df = objects({"airplane": 20, "car": 20})
    a = M.stratified_splits(df, FRACTIONS, seed=0, key="k")
    b = M.stratified_splits(df.sample(frac=1.0, random_state=1).sort_index(), FRACTIONS,
                            seed=0, key="k")
    c = M.stratified_splits(df, FRACTIONS, seed=1, key="k")
    assert a.equals(b)
    assert not a.equals(c)


def test_split_of_a_class_ignores_other_classes():
    both = objects({"airplane": 12, "car": 9})
    alone = objects({"car": 9})
    s_both = M.stratified_splits(both, FRACTIONS, 3, "k")[both["class_name"] == "car"]
    s_alone = M.stratified_splits(alone, FRACTIONS, 3, "k")
    assert s_both.tolist() == s_alone.tolist()


def test_too_few_objects_names_key_and_class():
    df = objects({"airplane": 10, "sofa": 2})
    with pytest.raises(ValueError, match=r"data.shapenet.split_fractions.*'sofa'.*2"):
        M.stratified_splits(df, FRACTIONS, 0, "data.shapenet")


@pytest.mark.parametrize("fractions, match", [
    ({"train": 0.6, "val": 0.2, "test": 0.1}, "sum to 1"),
    ({"train": 0.6, "val": 0.4}, "exactly the keys"),
    ({"train": 1.2, "val": -0.1, "test": -0.1}, r"key\.train"),
    ({"train": 0.0, "val": 0.5, "test": 0.5}, r"key\.train: must be positive"),
])
def test_bad_fractions(fractions, match):
    with pytest.raises(ValueError, match=match):
        M.check_fractions(fractions, "key")


def write_split_dir(path: Path, splits: dict[str, list[str]]) -> Path:
    path.mkdir()
    for name, keys in splits.items():
        (path / name).write_text(json.dumps([f"./data/data_TRAINED/{k}" for k in keys]))
    return path


def test_read_split_files_maps_validation_to_val(tmp_path):
    d = write_split_dir(tmp_path / "splits", {
        "train.json": ["02691156/a1", "02958343/c1"],
        "validation.json": ["02691156/a2"],
        "test.json": ["02958343/c2"]})
    assert M.read_split_files(d, "k") == {"02691156/a1": "train", "02958343/c1": "train",
                                          "02691156/a2": "val", "02958343/c2": "test"}


def test_read_split_files_errors(tmp_path):
    d = write_split_dir(tmp_path / "dup", {"train.json": ["02691156/a1"],
                                           "validation.json": ["02691156/a1"],
                                           "test.json": []})
    with pytest.raises(ValueError, match="validation.json.*already listed"):
        M.read_split_files(d, "k")
    d = write_split_dir(tmp_path / "missing", {"train.json": [], "test.json": []})
    with pytest.raises(FileNotFoundError, match="validation.json"):
        M.read_split_files(d, "data.shapenet.split_files")


def make_render_root(root: Path, per_synset: dict[str, int]) -> Path:
    for synset, n in per_synset.items():
        for k in range(n):
            (root / "image" / synset / f"m{k:02d}" / "easy").mkdir(parents=True)
    return root


def shapenet_section(**kw):
    section = {"source": "shapenet_render", "root": None, "classes": ["airplane", "car"],
               "split_fractions": FRACTIONS, "split_files": None,
               "max_objects_per_class": None}
    section.update(kw)
    return section


def test_shapenet_render_manifest(tmp_path):
    root = make_render_root(tmp_path / "sr", {"02691156": 5, "02958343": 5, "03001627": 2})
    out = tmp_path / "res"
    df = build_manifest("shapenet", shapenet_section(root=str(root)), 0,
                          out / "manifest.parquet", out / "sources")
    back = M.read_manifest(out / "manifest.parquet")
    assert back.equals(df)
    assert set(df["class_name"]) == {"airplane", "car"}  # chair not configured
    assert dict(zip(df["class_name"], df["class_index"])) == {"airplane": 0, "car": 3}
    assert "02958343_m03" in set(df["object_id"])
    row = df.set_index("object_id").loc["02691156_m00"]
    assert row["source"] == str(root / "image" / "02691156" / "m00")
    assert (out / "sources").is_dir() and not any((out / "sources").iterdir())
    assert df.groupby("class_name")["split"].apply(lambda s: sorted(set(s))).tolist() == \
        [["test", "train", "val"]] * 2


def test_shapenet_render_cap_per_class(tmp_path):
    root = make_render_root(tmp_path / "sr", {"02691156": 8, "02958343": 6})
    df = build_manifest("shapenet", shapenet_section(root=str(root),
                                                       max_objects_per_class=5), 0,
                          tmp_path / "m.parquet", tmp_path / "src")
    assert df.groupby("class_name").size().to_dict() == {"airplane": 5, "car": 5}
    assert sorted(df[df.class_name == "car"].object_id) == [f"02958343_m0{k}" for k in range(5)]


def test_unknown_synset_is_named(tmp_path):
    root = make_render_root(tmp_path / "sr", {"02691156": 5, "12345678": 1})
    with pytest.raises(ValueError, match="12345678"):
        build_manifest("shapenet", shapenet_section(root=str(root)), 0,
                         tmp_path / "m.parquet", tmp_path / "src")
    assert not (tmp_path / "m.parquet").exists() and not (tmp_path / "src").exists()


def test_missing_root_and_empty_class(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data.shapenet.root"):
        build_manifest("shapenet", shapenet_section(root=str(tmp_path / "nope")), 0,
                         tmp_path / "m.parquet", tmp_path / "src")
    root = make_render_root(tmp_path / "sr", {"02691156": 5})
    with pytest.raises(ValueError, match=r"data.shapenet.classes.*car"):
        build_manifest("shapenet", shapenet_section(root=str(root)), 0,
                         tmp_path / "m.parquet", tmp_path / "src")


def test_nf2vec_layout_with_split_files(tmp_path):
    root = tmp_path / "nf2vec"
    for synset in ("02691156", "02958343"):
        for k in range(4):
            d = root / synset / f"m{k}"
            d.mkdir(parents=True)
            (d / "transforms_train.json").write_text("{}")
    splits = write_split_dir(tmp_path / "splits", {
        "train.json": ["02691156/m0", "02691156/m1", "02958343/m0", "02958343/m1"],
        "validation.json": ["02691156/m2", "02958343/m2"],
        "test.json": ["02958343/m3"]})  # 02691156/m3 on disk but in no split file
    df = build_manifest("shapenet", shapenet_section(source="nf2vec", root=str(root),
                                                       split_files=str(splits)), 0,
                          tmp_path / "m.parquet", tmp_path / "src")
    assert len(df) == 7 and "02691156_m3" not in set(df["object_id"])
    split = df.set_index("object_id")["split"]
    assert split["02958343_m2"] == "val" and split["02958343_m3"] == "test"
    assert split["02691156_m0"] == "train"


def test_split_file_object_missing_on_disk(tmp_path):
    root = make_render_root(tmp_path / "sr", {"02691156": 2})
    splits = write_split_dir(tmp_path / "splits", {
        "train.json": ["02691156/m00", "02691156/zz"], "validation.json": [],
        "test.json": ["02691156/m01"]})
    with pytest.raises(ValueError, match=r"split_files.*02691156/zz"):
        build_manifest("shapenet", shapenet_section(root=str(root), classes=["airplane"],
                                                      split_files=str(splits)), 0,
                         tmp_path / "m.parquet", tmp_path / "src")


def test_synthetic3d_sources_land_in_sources_dir(tmp_path, monkeypatch):
    calls = []

    def generate_objects(class_names, per_class, seed, out_dir):
        calls.append((list(class_names), per_class, seed))
        records = []
        for name in class_names:
            for k in range(per_class):
                path = Path(out_dir) / f"{name}_{k}.json"
                path.write_text(json.dumps({"class": name}))
                records.append({"object_id": f"{name}_{k}", "class_name": name,
                                "source": str(path)})
        return records

    monkeypatch.setattr(synthetic3d, "generate_objects", generate_objects)
    section = {"source": "synthetic", "classes": ["car", "airplane"], "objects_per_class": 5,
               "split_fractions": FRACTIONS, "split_files": None}
    df = build_manifest("shapenet", section, 7, tmp_path / "m.parquet", tmp_path / "src")
    assert calls == [(["airplane", "car"], 5, 7)]  # label order, configured count and seed
    assert all(Path(s).parent == tmp_path / "src" and Path(s).is_file() for s in df.source)
    assert df.groupby("class_name").size().to_dict() == {"airplane": 5, "car": 5}


def test_validate_manifest_rejects_duplicates():
    df = objects({"airplane": 3})
    df["split"] = "train"
    df.loc[2, "object_id"] = df.loc[0, "object_id"]
    with pytest.raises(ValueError, match="duplicate object ids.*airplane_000"):
        M.validate_manifest(df, "somewhere.parquet")


def test_read_manifest_validates_the_whole_table_and_returns_the_asked_columns(tmp_path):
    from nfws.store import write_parquet

    df = objects({"airplane": 2, "car": 3})
    df["split"] = ["train", "test", "train", "test", "test"]
    write_parquet(df, tmp_path / "m.parquet")
    part = M.read_manifest(tmp_path / "m.parquet", ["object_id", "split"])
    assert list(part.columns) == ["object_id", "split"] and part.equals(df[["object_id", "split"]])
    test = M.split_members(tmp_path / "m.parquet", ["car_002", "airplane_001", "x"], "test", "s")
    assert test.tolist() == [True, True, False]
    with pytest.raises(ValueError, match=r"m\.parquet: 1 of the 2 objects of s are in split "
                                         r"'train'; need >= 2"):
        M.split_members(tmp_path / "m.parquet", ["car_000", "car_001"], "train", "s")
    write_parquet(df.drop(columns="source"), tmp_path / "nosource.parquet")
    with pytest.raises(ValueError, match=r"nosource\.parquet: missing columns \['source'\]"):
        M.read_manifest(tmp_path / "nosource.parquet", ["object_id", "split"])


def test_faces_folder_manifest_with_labels(tmp_path):
    from PIL import Image
    root = tmp_path / "ffhq"
    (root / "a").mkdir(parents=True)
    rows = []
    for k in range(6):
        name = f"a/{k:03d}.png"
        Image.fromarray(np.full((8, 8, 3), k * 20, np.uint8)).save(root / name)
        rows.append({"file": name, "mood": "happy" if k % 2 else "sad", "glasses": k % 3})
    (root / "notes.txt").write_text("not an image")
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    section = {"source": "folder", "root": str(root), "labels_csv": str(root / "labels.csv"),
               "count": 4, "resolution": 8,
               "split_fractions": {"train": 0.5, "val": 0.0, "test": 0.5}}
    df = build_manifest("faces", section, 0, tmp_path / "m.parquet", tmp_path / "src")
    assert sorted(df["object_id"]) == ["a_000", "a_001", "a_002", "a_003"]
    assert dict(zip(df.class_name, df.class_index)) == {"happy": 0, "sad": 1}
    assert df.groupby(["class_name", "split"]).size().to_dict() == {
        ("happy", "test"): 1, ("happy", "train"): 1, ("sad", "test"): 1, ("sad", "train"): 1}
    section["count"] = 7
    with pytest.raises(ValueError, match=r"data.faces.count"):
        build_manifest("faces", section, 0, tmp_path / "m2.parquet", tmp_path / "src2")


def test_split_files_listing_no_object_of_a_class(tmp_path):
    root = make_render_root(tmp_path / "sr", {"02691156": 2, "02958343": 2})
    splits = write_split_dir(tmp_path / "splits", {
        "train.json": ["02691156/m00"], "validation.json": [], "test.json": ["02691156/m01"]})
    with pytest.raises(ValueError, match=r"split_files.*\['car'\]"):
        build_manifest("shapenet", shapenet_section(root=str(root), split_files=str(splits)),
                         0, tmp_path / "m.parquet", tmp_path / "src")


def test_unknown_source_names_key_and_known_sources(tmp_path):
    with pytest.raises(ValueError, match=r"data.shapenet.source: unknown source 'disk'.*"
                                         r"\['nf2vec', 'shapenet_render', 'synthetic'\]"):
        build_manifest("shapenet", shapenet_section(source="disk"), 0, tmp_path / "m.parquet",
                       tmp_path / "src")
    with pytest.raises(ValueError, match=r"data.faces.source.*\['folder', 'synthetic'\]"):
        build_manifest("faces", {"source": "nf2vec"}, 0, tmp_path / "m.parquet",
                       tmp_path / "src")

