"""Image datasets (FFHQ-style folders, synthetic faces) and the images store.

Real and synthetic faces take the same path: a folder of PNG/JPEG files, optionally with a
labels CSV, listed by the manifest and packed here into ``images.zarr`` in manifest order
(``build_images_store``; ``write_images_store`` / ``open_images_store``). Every image's
size is checked against ``SizeLimits`` (config ``data.faces``) before any is decoded.
Store and labels CSV: docs/formats.md, "Images store"; size limits: docs/robustness.md,
"Face images of odd sizes".
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps
from tqdm import tqdm

from nfws.data.manifest import positive_int, read_manifest, register_source, root_dir
from nfws.data.paths import confined
from nfws.store import open_zarr, write_zarr

#: arrays of an images store (``results/data/{dataset}/images.zarr``)
IMAGE_ARRAYS = ("images", "object_ids", "labels", "attributes")

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ON_BAD_IMAGE = ("fail", "warn")


def list_images(root) -> list[Path]:
    """Every PNG/JPEG file under ``root`` (recursively, sorted); other files are not images."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: image folder missing")
    paths = sorted(p for p in root.rglob("*")
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"{root}: no {'/'.join(IMAGE_SUFFIXES)} images found")
    return paths


@contextlib.contextmanager
def open_image(path):
    """``path`` opened with PIL; a broken file is a ValueError naming it."""
    try:
        with Image.open(path) as img:
            yield img
    except (OSError, SyntaxError, ValueError) as err:  # PIL's errors for broken files
        raise ValueError(f"{path}: unreadable or corrupt image ({err})") from err


@dataclass(frozen=True)
class SizeLimits:
    """The smallest shorter side (px) and largest aspect ratio an image may have, and what
    an image outside them does (``on_bad_image``: fail or warn)."""

    min_side: int
    max_aspect: float
    on_bad_image: str

    @classmethod
    def from_section(cls, section: dict, key: str = "data.faces") -> SizeLimits:
        """The limits of a config section (``min_side`` null: its ``resolution``)."""
        if section["on_bad_image"] not in ON_BAD_IMAGE:
            raise ValueError(f"{key}.on_bad_image: must be one of {ON_BAD_IMAGE}, got "
                             f"{section['on_bad_image']!r}")
        min_side = section["resolution"] if section["min_side"] is None else section["min_side"]
        return cls(int(min_side), float(section["max_aspect"]), section["on_bad_image"])

    def problem(self, width: int, height: int) -> str | None:
        """What is wrong with a ``width`` x ``height`` image; None when it is within limits."""
        side = min(width, height)
        aspect = max(width, height) / side
        reasons = []
        if side < self.min_side:
            reasons.append(f"shorter side {side} < min_side {self.min_side}")
        if aspect > self.max_aspect:
            reasons.append(f"aspect ratio {aspect:.2f} > max_aspect {self.max_aspect:g}")
        return f"{width}x{height}: {', '.join(reasons)}" if reasons else None


def check_image_sizes(paths, limits: SizeLimits, key: str = "data.faces") -> None:
    """Read every image's size (its header only) against ``limits``; log each image
    outside them by name, then fail (``on_bad_image: fail``) or go on (``warn``)."""
    fail = limits.on_bad_image == "fail"
    bad = []
    for path in paths:
        with open_image(path) as img:
            problem = limits.problem(*img.size)
        if problem is None:
            continue
        bad.append(f"{path} ({problem})")
        if fail:
            log.error("%s: image %s is refused", key, bad[-1])
        else:
            log.warning("%s: image %s is used anyway (on_bad_image: warn)", key, bad[-1])
    if bad and fail:
        raise ValueError(f"{key}: {len(bad)} images outside min_side {limits.min_side} / "
                         f"max_aspect {limits.max_aspect:g}, e.g. {bad[:3]} (each is named in "
                         f"the log; {key}.on_bad_image: warn uses them anyway)")


def load_square_image(path, resolution: int) -> np.ndarray:
    """An image as uint8 [resolution, resolution, 3]: centre-cropped to a square, resized.

    Downsampling averages over pixel areas (PIL's box filter, so no aliasing); upsampling
    is bicubic. EXIF orientation is applied; an alpha channel is dropped.
    """
    with open_image(path) as img:
        img = ImageOps.exif_transpose(img).convert("RGB")
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side))
    if side != resolution:
        resample = Image.Resampling.BOX if side > resolution else Image.Resampling.BICUBIC
        img = img.resize((resolution, resolution), resample=resample)
    return np.asarray(img, dtype=np.uint8)


@dataclass(frozen=True)
class LabelTable:
    """A parsed labels CSV: ``table`` has a resolved ``path`` column, the label column and
    the attribute columns."""

    table: pd.DataFrame
    label_column: str
    attribute_names: list[str]


def read_labels_csv(path) -> LabelTable:
    """Parse and check a labels CSV: ``file``, then the label column, then attributes."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: labels CSV missing")
    try:
        table = pd.read_csv(path, dtype=str, nrows=0)
        columns = list(table.columns)
        if len(columns) < 2 or columns[0] != "file":
            raise ValueError(f"{path}: columns must be 'file', a label column, then "
                             f"attributes; got {columns}")
        table = pd.read_csv(path, dtype={"file": str, columns[1]: str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a readable CSV ({err})") from err
    label_column = columns[1]
    if table["file"].isna().any() or table[label_column].isna().any():
        raise ValueError(f"{path}: empty 'file' or {label_column!r} cells")
    dup = table["file"][table["file"].duplicated()].tolist()
    if dup:
        raise ValueError(f"{path}: files listed twice: {dup[:3]}")
    attribute_names = columns[2:]
    for column in attribute_names:
        if not pd.api.types.is_integer_dtype(table[column]):
            raise ValueError(f"{path}: attribute column {column!r} must hold integers")
    table["path"] = [str(confined(f, path.parent, f"{path}: column 'file'"))
                     for f in table["file"]]
    return LabelTable(table, label_column, attribute_names)


def image_folder_records(root, labels_csv, count, key: str) -> pd.DataFrame:
    """The first ``count`` (all if None) images under ``root``, labelled from the optional
    labels CSV; class indices follow the sorted label names."""
    root = Path(root)
    paths = list_images(root)
    if count is not None:
        if count > len(paths):
            raise ValueError(f"{key}.count: {count} images asked for, {root} has {len(paths)}")
        paths = paths[:count]
    ids = ["_".join(p.relative_to(root).with_suffix("").parts) for p in paths]
    df = pd.DataFrame({"object_id": ids, "source": [str(p) for p in paths]})
    if labels_csv is None:
        df["class_name"], df["class_index"] = "unlabelled", 0
        return df
    labels = read_labels_csv(labels_csv)
    table = labels.table.set_index("path")
    resolved = [str(p.resolve()) for p in paths]
    missing = [p for p in resolved if p not in table.index]
    if missing:
        raise ValueError(f"{labels_csv}: no row for {len(missing)} images, e.g. {missing[:3]}")
    df["class_name"] = table.loc[resolved, labels.label_column].to_numpy()
    class_names = sorted(df["class_name"].unique())
    df["class_index"] = df["class_name"].map(class_names.index)
    return df


@register_source("faces", "folder")
def folder_records(section: dict, seed: int, key: str, out_dir: Path) -> pd.DataFrame:
    """The images of ``data.faces.root`` (``count``: the first N, all if unset)."""
    count = section.get("count")
    if count is not None:
        count = positive_int(section, "count", key)
    return image_folder_records(root_dir(section, key), section.get("labels_csv"), count, key)


def build_images_store(manifest_path, out_path, resolution: int, limits: SizeLimits,
                       labels_csv=None) -> None:
    """Pack every manifest image (all splits, manifest order) into ``images.zarr``.

    Image sizes are checked against ``limits`` first. Labels are the manifest's class
    indices; attributes come from the labels CSV (which must agree with the manifest's
    class names), or are empty [N, 0] without one.
    """
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"resolution: must be a positive integer, got {resolution!r}")
    manifest = read_manifest(manifest_path)
    class_names = _manifest_class_names(manifest, manifest_path)
    sources = [str(Path(s).resolve()) for s in manifest["source"]]
    if labels_csv is None:
        attribute_names, label_name = [], "unlabelled"
        attributes = np.zeros((len(manifest), 0), dtype=np.int64)
    else:
        labels = read_labels_csv(labels_csv)
        rows = labels.table.set_index("path").reindex(sources)
        missing = [s for s, ok in zip(sources, rows["file"].notna()) if not ok]
        if missing:
            raise ValueError(f"{labels_csv}: no row for {len(missing)} manifest images, "
                             f"e.g. {missing[:3]}")
        clash = rows[labels.label_column].to_numpy() != manifest["class_name"].to_numpy()
        if clash.any():
            raise ValueError(f"{manifest_path}: class names disagree with {labels_csv} for "
                             f"{manifest['object_id'][clash].tolist()[:3]}; rebuild the manifest")
        attribute_names, label_name = labels.attribute_names, labels.label_column
        attributes = rows[attribute_names].to_numpy(dtype=np.int64).reshape(len(manifest), -1)
    check_image_sizes(sources, limits)
    images = np.empty((len(manifest), resolution, resolution, 3), dtype=np.uint8)
    for i, source in enumerate(tqdm(sources, desc="images store", unit="img")):
        images[i] = load_square_image(source, resolution)
    write_images_store(out_path, images, manifest["object_id"].tolist(),
                       manifest["class_index"].to_numpy(), attributes,
                       {"attribute_names": attribute_names, "label_name": label_name,
                        "class_names": class_names, "resolution": resolution})


def write_images_store(path, images, object_ids, labels, attributes, attrs: dict) -> None:
    """Write an images store atomically: images uint8 [N, H, W, 3], object_ids, labels
    (class indices into ``attrs["class_names"]``) and attributes int64 [N, A]."""
    if not attrs.get("class_names"):
        raise ValueError(f"{path}: an images store needs attrs class_names")
    write_zarr(path, {"images": images, "object_ids": np.asarray(object_ids, dtype=str),
                      "labels": np.asarray(labels, dtype=np.int64),
                      "attributes": np.asarray(attributes, dtype=np.int64)}, attrs=attrs)


def open_images_store(path):
    """Open an images store read-only (arrays stay lazy: the images load on access); fail
    naming the path if an array of ``IMAGE_ARRAYS`` or the ``class_names`` attr is missing."""
    root = open_zarr(path, required=list(IMAGE_ARRAYS))
    if not root.attrs.get("class_names"):
        raise ValueError(f"{path}: attrs lack class_names")
    return root


def _manifest_class_names(manifest: pd.DataFrame, where) -> list[str]:
    """Class names by index; indices must run 0..K-1 so labels index this list."""
    pairs = manifest[["class_index", "class_name"]].drop_duplicates().sort_values("class_index")
    if pairs["class_index"].tolist() != list(range(len(pairs))):
        raise ValueError(f"{where}: class indices {pairs['class_index'].tolist()} are not "
                         "0..K-1")
    return pairs["class_name"].tolist()
