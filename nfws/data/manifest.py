"""Object manifests: which objects a dataset holds, their class and their split.

Every later stage fans out over ``manifest.parquet``, so this module is the one place that
knows the ShapeNet class table, how objects are found on disk (or generated), and how they
are split. Columns: object_id, class_name, class_index, split ('train'|'val'|'test'),
source (path to what describes the object). Config: ``data.shapenet`` / ``data.faces``;
errors name the offending key.
Config keys, sources and object ids: docs/formats.md, "Manifest".
"""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from nfws.store import atomic_path, read_parquet, write_parquet

log = logging.getLogger(__name__)

# ShapenetRender's 13 classes as (synset, name), in label order (docs/recipes.md).
SHAPENET_CLASSES = (
    ("02691156", "airplane"),
    ("02828884", "bench"),
    ("02933112", "cabinet"),
    ("02958343", "car"),
    ("03001627", "chair"),
    ("03211117", "display"),
    ("03636649", "lamp"),
    ("03691459", "speaker"),
    ("04090263", "rifle"),
    ("04256520", "sofa"),
    ("04379243", "table"),
    ("04401088", "phone"),
    ("04530566", "watercraft"),
)
CLASS_NAMES = tuple(name for _, name in SHAPENET_CLASSES)
SYNSET_TO_NAME = dict(SHAPENET_CLASSES)
NAME_TO_SYNSET = {name: synset for synset, name in SHAPENET_CLASSES}
CLASS_INDEX = {name: i for i, name in enumerate(CLASS_NAMES)}

SPLITS = ("train", "val", "test")
SPLIT_FILES = {"train.json": "train", "validation.json": "val", "test.json": "test"}
COLUMNS = ("object_id", "class_name", "class_index", "split", "source")


# ---------------------------------------------------------------- classes


def shapenet_classes(names, key: str) -> list[str]:
    """The configured ShapeNet class subset in label order (all 13 when ``names`` is None)."""
    if names is None:
        return list(CLASS_NAMES)
    unknown = [n for n in names if n not in CLASS_INDEX]
    if unknown:
        raise ValueError(f"{key}: unknown class names {unknown}; known: {list(CLASS_NAMES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"{key}: class names repeated in {list(names)}")
    if not names:
        raise ValueError(f"{key}: empty class list")
    return sorted(names, key=CLASS_INDEX.__getitem__)


def synset_name(synset: str, where) -> str:
    """Class name of a ShapeNet synset; an unknown synset is an error naming ``where``."""
    if synset not in SYNSET_TO_NAME:
        raise ValueError(f"{where}: unknown ShapeNet synset {synset!r}; "
                         f"known: {sorted(SYNSET_TO_NAME)}")
    return SYNSET_TO_NAME[synset]


# ----------------------------------------------------------------- splits


def check_fractions(fractions, key: str) -> dict[str, float]:
    """Split fractions as {train, val, test}, each in [0, 1], train > 0, summing to 1."""
    if not isinstance(fractions, dict) or set(fractions) != set(SPLITS):
        raise ValueError(f"{key}: expected a mapping with exactly the keys {list(SPLITS)}, "
                         f"got {fractions!r}")
    out = {}
    for split in SPLITS:
        value = fractions[split]
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not 0.0 <= value <= 1.0:
            raise ValueError(f"{key}.{split}: must be a number in [0, 1], got {value!r}")
        out[split] = float(value)
    if abs(sum(out.values()) - 1.0) > 1e-6:
        raise ValueError(f"{key}: fractions must sum to 1, got {sum(out.values())!r}")
    if out["train"] == 0.0:
        raise ValueError(f"{key}.train: must be positive")
    return out


def split_counts(n: int, fractions: dict[str, float]) -> dict[str, int]:
    """Objects per split for a class of ``n``: largest-remainder rounding of n·fraction.

    Each split first gets floor(n·f); the objects left over go one each to the splits with
    the largest remainders (ties in the order train, val, test), so counts sum to n.
    """
    exact = {s: n * fractions[s] for s in SPLITS}
    counts = {s: math.floor(exact[s] + 1e-9) for s in SPLITS}
    left = n - sum(counts.values())
    by_remainder = sorted(SPLITS, key=lambda s: (-(exact[s] - counts[s]), SPLITS.index(s)))
    for s in by_remainder[:left]:
        counts[s] += 1
    return counts


def stratified_splits(df: pd.DataFrame, fractions: dict, seed: int, key: str) -> pd.Series:
    """Seeded split per object, stratified by class (counts from ``split_counts``).

    Each class is shuffled by its own generator seeded with (seed, class_index), so adding
    or dropping a class never moves the objects of another.
    """
    fractions = check_fractions(fractions, f"{key}.split_fractions")
    splits = pd.Series(index=df.index, dtype=object)
    for (class_index, class_name), group in df.groupby(["class_index", "class_name"]):
        counts = split_counts(len(group), fractions)
        thin = [s for s in SPLITS if fractions[s] > 0 and counts[s] == 0]
        if thin:
            raise ValueError(
                f"{key}.split_fractions: class {class_name!r} has only {len(group)} objects, "
                f"too few to put one in every split ({thin} would be empty)")
        order = group.sort_values("object_id").index.to_numpy()
        rng = np.random.default_rng([int(seed), int(class_index)])
        order = order[rng.permutation(len(order))]
        labels = np.repeat(SPLITS, [counts[s] for s in SPLITS])
        splits.loc[order] = labels
    return splits


def split_file_key(entry: str, where) -> str:
    """``<synset>/<model_id>`` from one nf2vec split entry such as
    ``./data/data_TRAINED/02691156/1a04e3eab45ca15dd86060f189eb133``."""
    parts = Path(entry).parts
    if len(parts) < 2:
        raise ValueError(f"{where}: split entry {entry!r} is not a '<synset>/<model_id>' path")
    return f"{parts[-2]}/{parts[-1]}"


def read_split_files(split_dir, key: str) -> dict[str, str]:
    """Map ``<synset>/<model_id>`` → split from nf2vec's ``train.json``, ``validation.json``
    and ``test.json`` in ``split_dir``."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise FileNotFoundError(f"{key}: split directory {split_dir} missing")
    assignment: dict[str, str] = {}
    for file_name, split in SPLIT_FILES.items():
        path = split_dir / file_name
        if not path.is_file():
            raise FileNotFoundError(f"{key}: split file {path} missing")
        try:
            entries = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise ValueError(f"{path}: expected a JSON list of path strings")
        for entry in entries:
            obj = split_file_key(entry, path)
            if obj in assignment:
                raise ValueError(f"{path}: object {obj} already listed in split "
                                 f"{assignment[obj]!r}")
            assignment[obj] = split
    return assignment


# --------------------------------------------------------------- builders

#: The object scanners, by (dataset, source): each takes (section, seed, key, out_dir) and
#: returns the objects (object_id, class_name, class_index, source) before splitting;
#: ``out_dir`` is where generated sources go. The modules that define them register here
#: (``nfws.data.sources`` imports every one).
SOURCES: dict[tuple[str, str], Callable[[dict, int, str, Path], pd.DataFrame]] = {}


def register_source(dataset: str, source: str):
    """Decorator: the scanner of ``data.<dataset>.source: <source>``."""
    def register(scanner):
        if (dataset, source) in SOURCES:
            raise ValueError(f"source {source!r} of dataset {dataset!r} registered twice")
        SOURCES[dataset, source] = scanner
        return scanner
    return register


def source_scanner(dataset: str, source: str, key: str):
    """The registered scanner; an unknown source is an error naming ``<key>.source`` and
    the known sources of the dataset."""
    if (dataset, source) not in SOURCES:
        known = sorted(s for d, s in SOURCES if d == dataset)
        raise ValueError(f"{key}.source: unknown source {source!r} for dataset "
                         f"{dataset!r}; known: {known}")
    return SOURCES[dataset, source]


@register_source("shapenet", "shapenet_render")
def shapenet_render_records(section: dict, seed: int, key: str, out_dir: Path) -> pd.DataFrame:
    """Objects of a DISN ShapenetRender root: ``<root>/image/<synset>/<model_id>/easy``."""
    image_dir = root_dir(section, key) / "image"
    if not image_dir.is_dir():
        raise FileNotFoundError(f"{key}.root: {image_dir} missing (expected "
                                f"<root>/image/<synset>/<model_id>/)")
    return _scan_synset_tree(image_dir, section, key, required="easy")


@register_source("shapenet", "nf2vec")
def nf2vec_records(section: dict, seed: int, key: str, out_dir: Path) -> pd.DataFrame:
    """Objects of an nf2vec root: ``<root>/<synset>/<model_id>/transforms_train.json``."""
    return _scan_synset_tree(root_dir(section, key), section, key,
                             required="transforms_train.json")


def _scan_synset_tree(tree: Path, section: dict, key: str, required: str) -> pd.DataFrame:
    """List ``<tree>/<synset>/<model_id>/`` objects of the configured classes.

    Every synset directory must be a known ShapeNet synset, every configured class must
    have objects, and every object directory must hold ``required``. Dot-files (e.g.
    .DS_Store) are not objects.
    """
    classes = shapenet_classes(section.get("classes"), f"{key}.classes")
    rows = []
    for synset_dir in sorted(p for p in tree.iterdir() if not p.name.startswith(".")):
        name = synset_name(synset_dir.name, synset_dir)
        if name not in classes:
            continue
        for obj_dir in sorted(p for p in synset_dir.iterdir() if not p.name.startswith(".")):
            if not (obj_dir / required).exists():
                raise FileNotFoundError(f"{obj_dir}: object without {required}")
            rows.append({"object_id": f"{synset_dir.name}_{obj_dir.name}", "class_name": name,
                         "class_index": CLASS_INDEX[name], "source": str(obj_dir)})
    df = pd.DataFrame(rows, columns=["object_id", "class_name", "class_index", "source"])
    empty = [c for c in classes if c not in set(df["class_name"])]
    if empty:
        raise ValueError(f"{key}.classes: no objects of {empty} under {tree}")
    return df


# --------------------------------------------------------------- manifest


def build_manifest(dataset: str, section: dict, seed: int, manifest_path,
                   sources_dir) -> pd.DataFrame:
    """Build, split, validate and write ``manifest.parquet`` of ``data.<dataset>``.

    Generated sources (synthetic object JSONs, face PNGs + attributes.csv) go to
    ``sources_dir``, which is always created (empty for real data); both outputs are
    committed atomically and the manifest's ``source`` paths point into ``sources_dir``.
    """
    key = f"data.{dataset}"
    sources_dir = Path(sources_dir)
    scanner = source_scanner(dataset, required_key(section, "source", key), key)
    with atomic_path(sources_dir) as tmp:
        tmp.mkdir()
        df = scanner(section, seed, key, tmp)
        df = assign_splits(df, section, seed, key)
        validate_manifest(df, key)
        df["source"] = [_moved(s, tmp, sources_dir) for s in df["source"]]
    write_parquet(df, manifest_path)
    return df


def assign_splits(df: pd.DataFrame, section: dict, seed: int, key: str) -> pd.DataFrame:
    """Add the split column (``split_files`` if set, else ``split_fractions``), applying
    ``max_objects_per_class`` to real 3D data; rows ordered by (class_index, object_id)."""
    df = df.sort_values(["class_index", "object_id"], ignore_index=True)
    cap = section.get("max_objects_per_class") if section.get("source") in (
        "shapenet_render", "nf2vec") else None
    if section.get("split_files") is not None:
        assignment = read_split_files(section["split_files"], f"{key}.split_files")
        df = _apply_split_files(df, assignment, key)
        if cap is not None:
            df = df.groupby(["class_index", "split"], sort=False).head(cap)
    else:
        if cap is not None:
            df = df.groupby("class_index", sort=False).head(cap).reset_index(drop=True)
        df["split"] = stratified_splits(df, required_key(section, "split_fractions", key),
                                        seed, key)
    df["split"] = df["split"].astype(str)
    return df.sort_values(["class_index", "object_id"], ignore_index=True)[list(COLUMNS)]


def _apply_split_files(df: pd.DataFrame, assignment: dict[str, str], key: str) -> pd.DataFrame:
    """Keep the listed objects with their split; listed objects absent on disk are an error,
    objects on disk the files do not list are dropped and counted in the log."""
    keys = df["object_id"].str.replace("_", "/", n=1, regex=False)
    on_disk = set(keys)
    selected_synsets = {NAME_TO_SYNSET[c] for c in df["class_name"].unique()}
    absent = [k for k in assignment if k not in on_disk and k.split("/")[0] in selected_synsets]
    if absent:
        raise ValueError(f"{key}.split_files: {len(absent)} listed objects not found on disk, "
                         f"e.g. {absent[:3]}")
    listed = keys.isin(assignment.keys())
    if (~listed).any():
        log.warning("%s.split_files: %d objects on disk are in no split file; left out",
                    key, int((~listed).sum()))
    empty = sorted(set(df["class_name"]) - set(df["class_name"][listed]))
    if empty:
        raise ValueError(f"{key}.split_files: no objects of classes {empty} are listed")
    df = df[listed.to_numpy()].copy()
    df["split"] = keys[listed].map(assignment).to_numpy()
    return df


def validate_manifest(df: pd.DataFrame, where) -> None:
    """Columns, unique ids, known splits, one class index per class name."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{where}: manifest lacks columns {missing}")
    if df.empty:
        raise ValueError(f"{where}: manifest has no objects")
    dup = df["object_id"][df["object_id"].duplicated()].unique().tolist()
    if dup:
        raise ValueError(f"{where}: duplicate object ids {dup[:5]}")
    bad = sorted(set(df["split"]) - set(SPLITS))
    if bad:
        raise ValueError(f"{where}: unknown split values {bad}")
    pairs = df[["class_name", "class_index"]].drop_duplicates()
    if pairs["class_name"].duplicated().any() or pairs["class_index"].duplicated().any():
        raise ValueError(f"{where}: class names and class indices are not one-to-one: "
                         f"{pairs.to_dict('records')}")


def read_manifest(path, columns=None) -> pd.DataFrame:
    """Read and validate a manifest written by ``build_manifest`` (or in its format, as
    track B's shape manifest); with ``columns`` (a subset of ``COLUMNS``), only those."""
    df = read_parquet(path, columns=list(COLUMNS))
    validate_manifest(df, path)
    return df if columns is None else df[list(columns)]


def split_members(path, object_ids, split: str, source) -> np.ndarray:
    """Mask of the ``object_ids`` (of ``source``) that the manifest at ``path`` puts in
    ``split`` (ids it does not list are not members); fewer than two is an error, as every
    caller fits or compares statistics of the split."""
    df = read_manifest(path, ["object_id", "split"])
    wanted = set(df.loc[df["split"] == split, "object_id"].astype(str))
    keep = np.array([str(i) in wanted for i in object_ids])
    if keep.sum() < 2:
        raise ValueError(f"{path}: {int(keep.sum())} of the {len(keep)} objects of {source} "
                         f"are in split {split!r}; need >= 2")
    return keep


# ---------------------------------------------------------------- helpers


def _moved(source: str, tmp: Path, final: Path) -> str:
    """A source path inside the temporary sources folder, re-rooted at its final place."""
    path = Path(source)
    return str(final / path.relative_to(tmp)) if path.is_relative_to(tmp) else source


def required_key(section: dict, name: str, key: str):
    if name not in section or section[name] is None:
        raise KeyError(f"{key}.{name}: required but missing")
    return section[name]


def positive_int(section: dict, name: str, key: str) -> int:
    value = required_key(section, name, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key}.{name}: must be a positive integer, got {value!r}")
    return value


def root_dir(section: dict, key: str) -> Path:
    root = Path(required_key(section, "root", key))
    if not root.is_dir():
        raise FileNotFoundError(f"{key}.root: directory {root} missing")
    return root
