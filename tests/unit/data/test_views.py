"""views.zarr: layout, content, order, and errors, for both readers."""
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from nfws.data.cameras import pixel_centres, pixel_rays
from nfws.data.manifest import CLASS_INDEX, NAME_TO_SYNSET
from nfws.data.shapenet_render import read_shapenet_render
from nfws.data.sphere_trace import render_objects, trace
from nfws.data.sdf_objects import SDFObject
from nfws.data.synthetic3d import generate_objects
from nfws.data.views import build_views_store
from nfws.store import open_zarr, read_zarr


def _manifest(path, records):
    df = pd.DataFrame(records)
    df["class_index"] = [CLASS_INDEX[c] for c in df["class_name"]]
    df["split"] = ["train", "test", "val"][: len(df)]
    df.to_parquet(path, index=False)
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("data") / "toy"
    records = generate_objects(["lamp", "table", "phone"], 1, seed=2, out_dir=tmp / "objects")
    manifest = _manifest(tmp / "manifest.parquet", records)
    render_objects(manifest, tmp / "views", resolution=24, n_views=4, seed=0)
    return tmp, records, manifest


@pytest.mark.parametrize("layout", ["shapenet_render", "nf2vec"])
def test_store_holds_every_object_in_manifest_order(dataset, layout):
    tmp, records, manifest = dataset
    out = tmp / f"views_{layout}.zarr"
    build_views_store(manifest, out, resolution=24, layout=layout, render_root=tmp / "views")
    arrays, attrs = read_zarr(out)
    assert arrays["images"].shape == (3, 4, 24, 24, 4) and arrays["images"].dtype == np.uint8
    assert arrays["c2w"].shape == (3, 4, 4, 4) and arrays["c2w"].dtype == np.float32
    assert arrays["intrinsics"].shape == (3, 4, 4) and arrays["intrinsics"].dtype == np.float32
    assert list(arrays["object_ids"]) == [r["object_id"] for r in records]
    assert attrs["dataset"] == "toy" and attrs["resolution"] == 24 and attrs["n_views"] == 4
    assert open_zarr(out)["images"].chunks == (1, 4, 24, 24, 4)  # one object per chunk
    rec = records[1]
    direct = read_shapenet_render(tmp / "views" / "image" / NAME_TO_SYNSET[rec["class_name"]] / rec["object_id"])
    assert np.array_equal(arrays["images"][1], direct["images"])
    assert np.allclose(arrays["c2w"][1], direct["c2w"], atol=1e-6)


def test_stored_poses_reproduce_stored_silhouettes(dataset):
    """Rays from the stored c2w + intrinsics hit the object exactly where alpha is set."""
    tmp, records, manifest = dataset
    out = tmp / "views_check.zarr"
    build_views_store(manifest, out, resolution=24, layout="shapenet_render",
                      render_root=tmp / "views")
    arrays, _ = read_zarr(out)
    obj = SDFObject.load(records[0]["source"])
    c2w, intr = torch.from_numpy(arrays["c2w"][0]), torch.from_numpy(arrays["intrinsics"][0])
    uv = pixel_centres(24, 24).expand(4, 24, 24, 2)
    o, d = pixel_rays(c2w[:, None, None], intr[:, None, None], uv)
    hit, _ = trace(obj, o.reshape(-1, 3), d.reshape(-1, 3))
    assert np.array_equal(hit.reshape(4, 24, 24).numpy(), arrays["images"][0, ..., 3] > 0)


def test_store_from_source_dirs_resizes(dataset, tmp_path):
    tmp, records, _ = dataset
    real = [{**r, "source": str(tmp / "views" / "image" / NAME_TO_SYNSET[r["class_name"]] / r["object_id"])}
            for r in records]
    manifest = _manifest(tmp_path / "manifest.parquet", real)
    build_views_store(manifest, tmp_path / "v.zarr", resolution=12, layout="shapenet_render",
                      dataset="real")
    arrays, attrs = read_zarr(tmp_path / "v.zarr", ["images", "intrinsics"])
    assert arrays["images"].shape == (3, 4, 12, 12, 4) and attrs["dataset"] == "real"
    assert np.allclose(arrays["intrinsics"][:, :, 2:], 6.0)


def test_missing_render_is_named_and_nothing_is_written(dataset, tmp_path):
    tmp, records, _ = dataset
    manifest = _manifest(tmp_path / "m.parquet", [{**records[0], "source": str(tmp_path / "gone")}])
    with pytest.raises(FileNotFoundError, match="gone/easy"):
        build_views_store(manifest, tmp_path / "v.zarr", resolution=24, layout="shapenet_render")
    assert not (tmp_path / "v.zarr").exists()


def test_view_count_mismatch_is_an_error(dataset, tmp_path):
    tmp, records, _ = dataset
    dirs = []
    for i, r in enumerate(records[:2]):
        dst = tmp_path / f"o{i}"
        shutil.copytree(tmp / "views" / "image" / NAME_TO_SYNSET[r["class_name"]] / r["object_id"], dst)
        dirs.append({**r, "source": str(dst)})
    meta = tmp_path / "o1" / "easy" / "rendering_metadata.txt"
    meta.write_text("\n".join(meta.read_text().splitlines()[:3]) + "\n")
    manifest = _manifest(tmp_path / "m.parquet", dirs)
    with pytest.raises(ValueError, match="has 3 views, earlier objects 4"):
        build_views_store(manifest, tmp_path / "v.zarr", resolution=24, layout="shapenet_render")
