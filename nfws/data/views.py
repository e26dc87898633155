"""The views store: every object's views, poses and intrinsics in one Zarr store.

``views.zarr`` holds ``images`` uint8 [N, V, H, W, 4], ``c2w`` float32 [N, V, 4, 4],
``intrinsics`` float32 [N, V, 4] and ``object_ids`` str [N], in manifest order, chunked
one object per chunk. Objects are streamed in one at a time, so the store can be larger
than memory; the whole store is committed atomically.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr
from tqdm import tqdm

from nfws import __version__
from nfws.data.shapenet_render import class_synset, read_object_views
from nfws.store import atomic_path, read_parquet


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
    manifest = read_parquet(manifest_path, columns=["object_id", "class_name", "source"])
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
