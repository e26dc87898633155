"""Contact sheets: one PNG grid of a few objects per class, a row per class.

A glance at the data every later number comes from (are the renders lit, centred, the
right class; do the faces look like faces) without opening a store by hand.
Sheet size in pixels: height = rows · tile, width = LABEL_WIDTH + columns · tile.
"""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure  # a bare Figure renders with Agg, no pyplot state
from PIL import Image

from nfws.data.images import open_images_store
from nfws.data.manifest import read_manifest
from nfws.data.views import open_views
from nfws.figures import save_figure

LABEL_WIDTH = 120  # pixels of the left margin holding class names
BLANK = 235        # grey of an empty cell (a class with fewer objects than columns)
DPI = 100


def views_contact_sheet(views_path, manifest_path, out_png, per_class: int = 4,
                        views=(0,), tile: int = 64) -> None:
    """Views of the first ``per_class`` objects of each class (manifest order), one tile per
    (object, view), composited on white."""
    manifest = read_manifest(manifest_path)
    store = open_views(views_path)
    n_views = store.images.shape[1]
    bad = [v for v in views if not 0 <= v < n_views]
    if bad:
        raise ValueError(f"{views_path}: views {bad} out of range (store has {n_views})")
    rows = []
    for class_name, group in _classes(manifest["class_index"], manifest["class_name"]):
        tiles = []
        for oid in manifest["object_id"].to_numpy()[group][:per_class]:
            if oid not in store.index:
                raise ValueError(f"{views_path}: object {oid} of {manifest_path} missing")
            rgba = store.images[store.index[oid]].astype(np.float32)
            for v in views:
                alpha = rgba[v, ..., 3:] / 255.0
                tiles.append(rgba[v, ..., :3] * alpha + 255.0 * (1.0 - alpha))
        rows.append((class_name, tiles))
    write_sheet(rows, out_png, per_class * len(views), tile)


def images_contact_sheet(images_path, out_png, per_class: int = 8, tile: int = 64) -> None:
    """The first ``per_class`` images of each class of an images store."""
    store = open_images_store(images_path)
    class_names = store.attrs["class_names"]
    labels = store["labels"][...]
    names = np.array(class_names, dtype=object)[labels]
    rows = [(name, [store["images"][i] for i in np.flatnonzero(group)[:per_class]])
            for name, group in _classes(labels, names)]
    write_sheet(rows, out_png, per_class, tile)


def _classes(indices, names):
    """(class name, boolean mask) per class, in class-index order."""
    indices, names = np.asarray(indices), np.asarray(names)
    for k in np.unique(indices):
        mask = indices == k
        yield str(names[mask][0]), mask


def write_sheet(rows, out_png, columns: int, tile: int) -> None:
    """Write a labelled grid: ``rows`` is [(label, [image HxWx3, ...]), ...]."""
    if not rows or columns < 1 or tile < 1:
        raise ValueError(f"{out_png}: nothing to draw ({len(rows)} rows, {columns} columns)")
    height, width = len(rows) * tile, LABEL_WIDTH + columns * tile
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    for r, (_, tiles) in enumerate(rows):
        for c in range(columns):
            cell = canvas[r * tile:(r + 1) * tile, LABEL_WIDTH + c * tile:
                          LABEL_WIDTH + (c + 1) * tile]
            cell[...] = _fit(tiles[c], tile) if c < len(tiles) else BLANK
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.imshow(canvas, interpolation="nearest", extent=(0, width, height, 0))
    ax.set_axis_off()
    font = float(np.clip(tile / 3 * 72 / DPI, 6.0, 12.0))  # points: text about tile/3 px high
    for r, (label, _) in enumerate(rows):
        ax.text(LABEL_WIDTH - 6, (r + 0.5) * tile, label, ha="right", va="center",
                fontsize=font)
    save_figure(fig, out_png, dpi=DPI)


def _fit(image, tile: int) -> np.ndarray:
    """An image as uint8 [tile, tile, 3]: area-averaged down, nearest-neighbour up."""
    img = Image.fromarray(np.clip(np.rint(np.asarray(image, dtype=np.float32)), 0, 255)
                          .astype(np.uint8))
    if img.size != (tile, tile):
        shrink = img.size[0] > tile
        img = img.resize((tile, tile), Image.Resampling.BOX if shrink
                         else Image.Resampling.NEAREST)
    return np.asarray(img)
