"""Which 3D shapes the mLoRA track fits: its own manifest over synthetic or real shapes.

``build_shape_manifest`` writes a manifest in the project's format (object_id,
class_name, class_index, split, source) whose ``source`` column is what
``nfws.data.targets.read_shape`` reads. Config section ``lora.datasets.shapenet.shapes``:
``source`` (``manifest``, ``onet`` or ``meshes``), ``root``, ``classes``,
``max_objects_per_class``, ``split_fractions``.
Keys and layouts: docs/formats.md, "Track B shape manifest".
"""
from __future__ import annotations

from pathlib import Path

from dataclasses import dataclass

import pandas as pd

from nfws.config_files import Section
from nfws.data.manifest import (CLASS_INDEX, COLUMNS, read_manifest,
                                shapenet_classes, stratified_splits, synset_name,
                                validate_manifest)
from nfws.store import write_parquet

SOURCES = ("manifest", "onet", "meshes")
MESH_SUFFIXES = (".obj", ".off")
#: Occupancy Networks' split list of each split, inside every synset folder.
SPLIT_LISTS = {"train": "train.lst", "val": "val.lst", "test": "test.lst"}


def _scan(root: Path, onet: bool, key: str) -> pd.DataFrame:
    """Objects under ``<root>/<synset>/``: onet folders (``onet``) or mesh files."""
    if not root.is_dir():
        raise FileNotFoundError(f"{key}.root: directory {root} missing")
    rows = []
    for synset_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        name = synset_name(synset_dir.name, synset_dir)
        for item in sorted(p for p in synset_dir.iterdir() if not p.name.startswith(".")):
            if onet and item.is_dir():
                missing = [f for f in ("points.npz", "pointcloud.npz") if not (item / f).exists()]
                if missing:
                    raise FileNotFoundError(f"{item}: occupancy-network object without {missing}")
                model_id = item.name
            elif not onet and item.is_file() and item.suffix.lower() in MESH_SUFFIXES:
                model_id = item.stem
            else:
                continue
            rows.append({"object_id": f"{synset_dir.name}_{model_id}", "class_name": name,
                         "class_index": CLASS_INDEX[name], "source": str(item),
                         "synset_dir": str(synset_dir), "model_id": model_id})
    if not rows:
        kind = "<synset>/<model_id>/points.npz folders" if onet else "<synset>/<id>.obj|.off meshes"
        raise ValueError(f"{key}.root: no {kind} under {root}")
    return pd.DataFrame(rows)


def _listed_splits(df: pd.DataFrame) -> pd.Series | None:
    """Splits from the synset folders' .lst files; None when no folder has them."""
    split = pd.Series(index=df.index, dtype=object)
    found = False
    for synset_dir, group in df.groupby("synset_dir"):
        assignment = {}
        for name, file_name in SPLIT_LISTS.items():
            path = Path(synset_dir) / file_name
            if path.exists():
                found = True
                for model_id in path.read_text().split():
                    assignment[model_id] = name
        split.loc[group.index] = group["model_id"].map(assignment)
    if not found:
        return None
    unlisted = df.loc[split.isna(), "source"].tolist()
    if unlisted:
        raise ValueError(f"{len(unlisted)} objects are in no split list ({list(SPLIT_LISTS.values())}), "
                         f"e.g. {unlisted[:3]}")
    return split


@dataclass(frozen=True)
class ShapeSection(Section):
    """The ``lora.datasets.shapenet.shapes`` section (module doc)."""

    SECTION = "lora.datasets.shapenet.shapes"
    source: str
    root: str | None
    classes: list | None
    max_objects_per_class: int | None
    split_fractions: dict

    def check(self, section: str) -> None:
        if self.source not in SOURCES:
            self.bad(section, "source", f"must be one of {SOURCES}")
        if self.source != "manifest" and self.root is None:
            self.bad(section, "root", f"required for source {self.source!r}")
        cap = self.max_objects_per_class
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            self.bad(section, "max_objects_per_class", "must be a positive integer or null")


def build_shape_manifest(section: dict, seed: int, out_path, data_manifest=None) -> pd.DataFrame:
    """Write the manifest of the shapes track B fits (config section in the module doc).

    ``data_manifest``: the ``data.shapenet`` manifest, read when ``source`` is
    ``manifest``. Returns the written frame, sorted by (class_index, object_id).
    """
    key = ShapeSection.SECTION
    section = ShapeSection.pick(section)
    source = section.source
    if source == "manifest":
        if data_manifest is None:
            raise ValueError(f"{key}.source is 'manifest' but no data manifest was given")
        df = read_manifest(data_manifest)
    else:
        df = _scan(Path(section.root), source == "onet", key)
    if section.classes is not None:
        keep = shapenet_classes(section.classes, f"{key}.classes")
        absent = [c for c in keep if c not in set(df["class_name"])]
        if absent:
            raise ValueError(f"{key}.classes: no objects of {absent}")
        df = df[df["class_name"].isin(keep)]
    df = df.sort_values(["class_index", "object_id"], ignore_index=True)
    if source != "manifest":
        listed = _listed_splits(df)
        df["split"] = (listed if listed is not None else
                       stratified_splits(df, section.split_fractions, seed, key))
    cap = section.max_objects_per_class
    if cap is not None:
        df = df.groupby(["class_index", "split"], sort=False).head(cap)
    df = df.sort_values(["class_index", "object_id"], ignore_index=True)[list(COLUMNS)]
    df["split"] = df["split"].astype(str)
    validate_manifest(df, key)
    if not {"train", "test"} <= set(df["split"]):
        raise ValueError(f"{key}: need objects in the train and test splits (the test split "
                         f"is the generation reference), got {df['split'].value_counts().to_dict()}")
    write_parquet(df, out_path)
    return df
