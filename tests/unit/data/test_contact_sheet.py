import numpy as np
import pandas as pd
import pytest
from PIL import Image

from nfws.data.images import write_images_store
from nfws.data import contact_sheet as C
from nfws.store import write_parquet, write_zarr

COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200),
           (200, 30, 200)]


def views_fixture(tmp_path, drop=None):
    """6 objects (3 airplanes, 3 cars), 2 views of 16 px: view 0 opaque in the object's
    colour, view 1 fully transparent."""
    ids = [f"o{k}" for k in range(6)]
    images = np.zeros((6, 2, 16, 16, 4), np.uint8)
    for k, colour in enumerate(COLOURS):
        images[k, 0, ..., :3] = colour
        images[k, 0, ..., 3] = 255
        images[k, 1, ..., :3] = colour  # hidden by alpha 0: must come out white
    keep = [k for k in range(6) if k != drop]
    write_zarr(tmp_path / "views.zarr", {"images": images[keep],
                                         "c2w": np.tile(np.eye(4, dtype=np.float32), (6, 2, 1, 1))[keep],
                                         "intrinsics": np.ones((6, 2, 4), np.float32)[keep],
                                         "object_ids": np.array(ids)[keep]})
    manifest = pd.DataFrame({"object_id": ids, "class_name": ["airplane"] * 3 + ["car"] * 3,
                             "class_index": [0] * 3 + [3] * 3, "split": "train",
                             "source": "x"})
    write_parquet(manifest, tmp_path / "manifest.parquet")
    return tmp_path / "views.zarr", tmp_path / "manifest.parquet"


def test_views_sheet_size_and_tiles(tmp_path):
    views, manifest = views_fixture(tmp_path)
    out = tmp_path / "plots" / "sheet.png"
    C.views_contact_sheet(views, manifest, out, per_class=2, views=(0, 1), tile=20)
    sheet = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert sheet.shape == (2 * 20, C.LABEL_WIDTH + 4 * 20, 3)
    # row 1 (cars), column 0: object o3 view 0; column 1: its transparent view 1 → white

    def centre(row, col):
        return sheet[row * 20 + 10, C.LABEL_WIDTH + col * 20 + 10]

    assert np.abs(centre(1, 0) - COLOURS[3]).max() <= 2
    assert np.abs(centre(1, 1) - 255).max() <= 2
    assert np.abs(centre(0, 2) - COLOURS[1]).max() <= 2  # airplanes: o0, o1 in columns 0-3
    margin = sheet[:, :C.LABEL_WIDTH]
    assert margin.min() < 128  # class names are written in the margin


def test_views_sheet_errors(tmp_path):
    views, manifest = views_fixture(tmp_path, drop=4)
    with pytest.raises(ValueError, match="o4"):
        C.views_contact_sheet(views, manifest, tmp_path / "s.png", per_class=2)
    with pytest.raises(ValueError, match="views"):
        C.views_contact_sheet(views, manifest, tmp_path / "s.png", views=(5,))
    assert not (tmp_path / "s.png").exists()


def test_images_sheet_blank_cells_for_short_classes(tmp_path):
    labels = np.array([0, 0, 0, 1, 2, 2])
    images = np.zeros((6, 8, 8, 3), np.uint8)
    images[labels == 1] = (250, 10, 10)
    write_images_store(tmp_path / "images.zarr", images, [f"o{i}" for i in range(6)], labels,
                       np.zeros((6, 0)), {"class_names": ["a", "b", "c"]})
    out = tmp_path / "faces.png"
    C.images_contact_sheet(tmp_path / "images.zarr", out, per_class=3, tile=16)
    sheet = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert sheet.shape == (3 * 16, C.LABEL_WIDTH + 3 * 16, 3)
    row_b = sheet[16 + 8, C.LABEL_WIDTH + 8::16]
    assert np.abs(row_b[0] - (250, 10, 10)).max() <= 2
    assert np.abs(row_b[1:] - C.BLANK).max() <= 2  # class b has one image
