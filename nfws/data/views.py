"""The views store: every object's views, poses and intrinsics in one Zarr store.

``views.zarr`` holds ``images`` uint8 [N, V, H, W, 4], ``c2w`` float32 [N, V, 4, 4],
``intrinsics`` float32 [N, V, 4] and ``object_ids`` str [N], in manifest order, chunked
one object per chunk. Objects are streamed in one at a time, so the store can be larger
than memory; the whole store is committed atomically. :func:`load_views` reads the views
of chosen objects back, checked; :func:`open_views` opens the store lazily.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr
from tqdm import tqdm

from nfws import __version__
from nfws.data.shapenet_render import class_synset, read_object_views
from nfws.data.manifest import read_manifest
from nfws.store import atomic_path, open_zarr, write_zarr


def object_view_dir(row, layout: str, render_root, manifest_path) -> Path:
    """Where one manifest row's views live.

    With ``render_root`` (synthetic objects rendered by the render stage) the folder is
    found from class and id: ``<render_root>/image/<synset>/<id>`` for 'shapenet_render',
    its ``easy`` subfolder for 'nf2vec'. Without it the row's ``source`` is the folder.
    """
    if render_root is None:
        return Path(row.source)
    synset = class_synset(row.class_name, manifest_path)
    folder = Path(render_root) / "image" / synset / row.object_id
    return folder / "easy" if layout == "nf2vec" else folder


def build_views_store(manifest_path, out_path, resolution: int, layout: str,
                      render_root=None, dataset: str | None = None) -> None:
    """Write ``views.zarr`` for every object in the manifest.

    ``dataset`` defaults to the manifest's folder name (``results/data/{dataset}/``).
    Every object must have the same number of views.
    """
    manifest = read_manifest(manifest_path, columns=["object_id", "class_name", "source"])
    if len(manifest) == 0:
        raise ValueError(f"{manifest_path}: manifest has no objects")
    if resolution < 1:
        raise ValueError(f"data.shapenet.resolution: must be >= 1, got {resolution}")
    dataset = dataset or Path(manifest_path).parent.name
    n = len(manifest)
    with atomic_path(out_path) as tmp:
        root = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        arrays = None
        for i, row in enumerate(tqdm(manifest.itertuples(index=False), total=n, desc="views")):
            folder = object_view_dir(row, layout, render_root, manifest_path)
            views = read_object_views(folder, layout, resolution)
            if arrays is None:
                n_views = len(views["images"])
                arrays = {k: root.create_array(k, shape=(n,) + v.shape, dtype=v.dtype,
                                               chunks=(1,) + v.shape)
                          for k, v in views.items()}
            elif len(views["images"]) != n_views:
                raise ValueError(f"{manifest_path}: object {row.object_id} has "
                                 f"{len(views['images'])} views, earlier objects {n_views}")
            for k, v in views.items():
                arrays[k][i] = v
        ids = np.asarray(manifest["object_id"].astype(str))
        root.create_array("object_ids", shape=ids.shape, dtype=str)[...] = ids
        root.attrs.update({"nfws_version": __version__, "dataset": dataset,
                           "resolution": int(resolution), "n_views": int(n_views),
                           "layout": layout})


@dataclass
class ShardViews:
    """The views of B objects: images uint8 [B, V, H, W, 4], c2w [B, V, 4, 4], intrinsics [B, V, 4]."""

    object_ids: list[str]
    images: np.ndarray
    c2w: np.ndarray
    intrinsics: np.ndarray
    source: str = "<memory>"

    def select(self, idx: list[int]) -> ShardViews:
        """The views of the objects at positions ``idx``, in that order."""
        return ShardViews([self.object_ids[i] for i in idx], self.images[idx], self.c2w[idx],
                          self.intrinsics[idx], self.source)


VIEW_ARRAYS = ("images", "c2w", "intrinsics", "object_ids")


@dataclass(frozen=True, eq=False)
class ViewsStore:
    """An opened views store: object ids read, the other arrays lazy zarr arrays (so poses
    and the image size come without loading any image)."""

    path: str
    object_ids: list[str]
    images: object       # zarr uint8 [N, V, H, W, 4]
    c2w: object          # zarr float32 [N, V, 4, 4]
    intrinsics: object   # zarr float32 [N, V, 4]

    @functools.cached_property
    def index(self) -> dict[str, int]:
        """Row of each object id."""
        return {oid: i for i, oid in enumerate(self.object_ids)}


def open_views(views_store) -> ViewsStore:
    """Open a views store read-only; fail with the path if an array is missing."""
    root = open_zarr(views_store, required=list(VIEW_ARRAYS))
    return ViewsStore(str(views_store), [str(s) for s in root["object_ids"][...]],
                      root["images"], root["c2w"], root["intrinsics"])


def write_views(views_store, views: ShardViews, attrs: dict) -> None:
    """Write ``views`` held in memory as a views store, atomically (``build_views_store``
    streams large ones object by object)."""
    check_views(views)
    write_zarr(views_store, {"images": views.images, "c2w": views.c2w,
                             "intrinsics": views.intrinsics,
                             "object_ids": np.array(views.object_ids, dtype=str)}, attrs=attrs)


def load_views(views_store, object_ids: list[str]) -> ShardViews:
    """Read the views of ``object_ids`` from a views store; every id must be present."""
    store = open_views(views_store)
    missing = [oid for oid in object_ids if oid not in store.index]
    if missing:
        raise KeyError(f"{views_store}: no views for objects {missing}")
    rows = [store.index[oid] for oid in object_ids]
    images = np.stack([store.images[i] for i in rows])
    c2w = np.stack([store.c2w[i] for i in rows]).astype(np.float32)
    intrinsics = np.stack([store.intrinsics[i] for i in rows]).astype(np.float32)
    views = ShardViews(list(object_ids), images, c2w, intrinsics, str(views_store))
    check_views(views)
    return views


def check_views(views: ShardViews) -> None:
    """Shapes, dtypes and finiteness; a blank or non-finite object is named."""
    B = len(views.object_ids)
    if views.images.dtype != np.uint8 or views.images.ndim != 5 or views.images.shape[-1] != 4:
        raise ValueError(f"{views.source}: images must be uint8 [N, V, H, W, 4], "
                         f"got {views.images.dtype} {views.images.shape}")
    V = views.images.shape[1]
    if views.images.shape[0] != B or views.c2w.shape != (B, V, 4, 4) or \
            views.intrinsics.shape != (B, V, 4):
        raise ValueError(f"{views.source}: c2w {views.c2w.shape} / intrinsics "
                         f"{views.intrinsics.shape} do not match images {views.images.shape}")
    for b, oid in enumerate(views.object_ids):
        if not (np.isfinite(views.c2w[b]).all() and np.isfinite(views.intrinsics[b]).all()):
            raise ValueError(f"{views.source}: object {oid!r} has non-finite poses or intrinsics")
        if views.images[b, ..., 3].max() == 0:
            raise ValueError(f"{views.source}: object {oid!r} has empty alpha in every view")
