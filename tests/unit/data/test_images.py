import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from nfws.data import images as I
from nfws.data.sources import build_manifest
from nfws.store import read_zarr

#: The images of these tests: shorter side >= 8, aspect ratio <= 4 / 3.
LIMITS = I.SizeLimits(min_side=8, max_aspect=1.5, on_bad_image="fail")


def checkerboard(size: int, cell: int) -> np.ndarray:
    ij = np.indices((size, size)) // cell
    board = ((ij[0] + ij[1]) % 2 * 255).astype(np.uint8)
    return np.repeat(board[..., None], 3, axis=2)


def save(array, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def test_downsample_averages_areas(tmp_path):
    # an 8-px board of 2-px cells, halved, is exactly the 4-px board of 1-px cells
    img = I.load_square_image(save(checkerboard(8, 2), tmp_path / "a.png"), 4)
    assert np.array_equal(img[..., 0], checkerboard(4, 1)[..., 0])
    # 1-px cells: every 2×2 block averages 0, 255, 255, 0 → 127.5
    img = I.load_square_image(save(checkerboard(8, 1), tmp_path / "b.png"), 4)
    assert np.all(np.abs(img.astype(float) - 127.5) <= 0.5)


def test_centre_crop_drops_the_sides(tmp_path):
    wide = np.zeros((4, 8, 3), np.uint8)
    wide[:, :2] = (255, 0, 0)     # left strip: cropped away
    wide[:, 6:] = (0, 0, 255)     # right strip: cropped away
    wide[:, 2:6] = checkerboard(4, 2)
    img = I.load_square_image(save(wide, tmp_path / "wide.png"), 2)
    assert np.array_equal(img[..., 0], [[0, 255], [255, 0]])
    assert np.array_equal(img[..., 0], img[..., 2])  # grey: no red or blue strip left


def test_jpeg_and_alpha_are_read_as_rgb(tmp_path):
    rgba = np.zeros((6, 6, 4), np.uint8)
    rgba[..., 1], rgba[..., 3] = 200, 0
    img = I.load_square_image(save(rgba, tmp_path / "a.png"), 6)
    assert img.shape == (6, 6, 3) and np.all(img[..., 1] == 200)
    jpg = tmp_path / "c.jpg"
    Image.fromarray(np.full((10, 10, 3), 120, np.uint8)).save(jpg, quality=95)
    assert np.all(np.abs(I.load_square_image(jpg, 5).astype(int) - 120) <= 2)


def test_corrupt_and_truncated_images_are_named(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    with pytest.raises(ValueError, match="bad.png"):
        I.load_square_image(bad, 4)
    good = save(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8),
                tmp_path / "cut.png")
    good.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ValueError, match="cut.png"):
        I.load_square_image(good, 4)


def test_list_images_recursive_and_missing_dir(tmp_path):
    save(checkerboard(4, 1), tmp_path / "x" / "b.PNG")
    save(checkerboard(4, 1), tmp_path / "x" / "sub" / "a.jpg")
    (tmp_path / "x" / "readme.txt").write_text("hi")
    assert [p.name for p in I.list_images(tmp_path / "x")] == ["b.PNG", "a.jpg"]
    with pytest.raises(FileNotFoundError, match="nope"):
        I.list_images(tmp_path / "nope")


def test_labels_csv_checks(tmp_path):
    p = tmp_path / "l.csv"
    p.write_text("name,label\na.png,x\n")
    with pytest.raises(ValueError, match=r"l.csv.*'file'"):
        I.read_labels_csv(p)
    p.write_text("file,label,smiling\na.png,x,yes\n")
    with pytest.raises(ValueError, match=r"l.csv.*'smiling'.*integers"):
        I.read_labels_csv(p)
    p.write_text("file,label,smiling\na.png,x,1\na.png,y,0\n")
    with pytest.raises(ValueError, match="listed twice"):
        I.read_labels_csv(p)



@pytest.mark.parametrize("entry", ["../elsewhere/a.png", "sub/../../a.png", "LINK"])
def test_labels_csv_entry_outside_its_folder_is_refused(tmp_path, entry):
    folder = tmp_path / "ffhq"
    folder.mkdir()
    save(checkerboard(4, 1), tmp_path / "outside.png")
    if entry == "LINK":
        (folder / "link.png").symlink_to(tmp_path / "outside.png")
        entry = "link.png"
    p = folder / "labels.csv"
    p.write_text(f"file,label\nok.png,x\n{entry},y\n")
    with pytest.raises(ValueError, match=rf"labels\.csv: column 'file': '{re.escape(entry)}' "
                                         rf"resolves to .*, outside .*ffhq"):
        I.read_labels_csv(p)

def make_folder(root, n=6):
    rows = []
    for k in range(n):
        colour = (k * 40, 255 - k * 40, 7)
        save(np.tile(np.array(colour, np.uint8), (12, 16, 1)), root / f"img{k}.png")
        rows.append({"file": f"img{k}.png", "hair": ["red", "black"][k % 2],
                     "smiling": k % 3 == 0, "beard": k})
    table = pd.DataFrame(rows)
    table["smiling"] = table["smiling"].astype(int)
    table.to_csv(root / "labels.csv", index=False)
    return table


def faces_section(root, labels=True):
    return {"source": "folder", "root": str(root),
            "labels_csv": str(root / "labels.csv") if labels else None, "count": None,
            "resolution": 8, "split_fractions": {"train": 0.5, "val": 0.0, "test": 0.5}}


def test_images_store_from_labelled_folder(tmp_path):
    table = make_folder(tmp_path / "ffhq")
    m = tmp_path / "faces" / "manifest.parquet"
    manifest = build_manifest("faces", faces_section(tmp_path / "ffhq"), 0, m,
                              tmp_path / "faces" / "sources")
    out = tmp_path / "faces" / "images.zarr"
    I.build_images_store(m, out, 4, LIMITS, labels_csv=tmp_path / "ffhq" / "labels.csv")
    arrays, attrs = read_zarr(out)
    assert attrs["class_names"] == ["black", "red"]  # alphabetical
    assert attrs["label_name"] == "hair" and attrs["attribute_names"] == ["smiling", "beard"]
    assert attrs["resolution"] == 4
    assert arrays["object_ids"].tolist() == manifest["object_id"].tolist()
    for i, oid in enumerate(arrays["object_ids"]):
        k = int(oid.removeprefix("img"))
        assert arrays["labels"][i] == {"black": 0, "red": 1}[table.hair[k]]
        assert arrays["attributes"][i].tolist() == [table.smiling[k], table.beard[k]]
        assert np.array_equal(arrays["images"][i], np.tile([k * 40, 255 - k * 40, 7], (4, 4, 1)))
    assert arrays["images"].dtype == np.uint8 and arrays["labels"].dtype == np.int64


def test_images_store_unlabelled(tmp_path):
    make_folder(tmp_path / "ffhq", n=4)
    m = tmp_path / "m.parquet"
    build_manifest("faces", faces_section(tmp_path / "ffhq", labels=False), 0, m,
                   tmp_path / "src")
    I.build_images_store(m, tmp_path / "s.zarr", 8, LIMITS)
    arrays, attrs = read_zarr(tmp_path / "s.zarr")
    assert arrays["attributes"].shape == (4, 0) and set(arrays["labels"]) == {0}
    assert attrs["class_names"] == ["unlabelled"] and arrays["images"].shape == (4, 8, 8, 3)


def test_images_store_rejects_stale_labels(tmp_path):
    table = make_folder(tmp_path / "ffhq", n=4)
    m = tmp_path / "m.parquet"
    build_manifest("faces", faces_section(tmp_path / "ffhq"), 0, m, tmp_path / "src")
    table["hair"] = "red"
    table.to_csv(tmp_path / "ffhq" / "labels.csv", index=False)
    with pytest.raises(ValueError, match="class names disagree"):
        I.build_images_store(m, tmp_path / "s.zarr", 8, LIMITS, tmp_path / "ffhq" / "labels.csv")
    assert not (tmp_path / "s.zarr").exists()


def test_unlabelled_image_in_labelled_folder(tmp_path):
    make_folder(tmp_path / "ffhq", n=4)
    save(checkerboard(4, 1), tmp_path / "ffhq" / "extra.png")
    with pytest.raises(ValueError, match=r"labels.csv: no row for 1 images.*extra.png"):
        build_manifest("faces", faces_section(tmp_path / "ffhq"), 0, tmp_path / "m.parquet",
                       tmp_path / "src")


def test_synthetic_faces_end_to_end(tmp_path):
    section = {"source": "synthetic", "root": None, "labels_csv": None, "count": 40,
               "resolution": 32, "split_fractions": {"train": 0.75, "val": 0.0, "test": 0.25}}
    m = tmp_path / "faces" / "manifest.parquet"
    src = tmp_path / "faces" / "sources"
    manifest = build_manifest("faces", section, 5, m, src)
    from nfws.data.faces import ATTRIBUTES, faces_labels_csv, generate_faces
    I.build_images_store(m, tmp_path / "faces" / "images.zarr", 32, LIMITS,
                         faces_labels_csv(section, src))
    arrays, attrs = read_zarr(tmp_path / "faces" / "images.zarr")
    images, table = generate_faces(40, 5, 32)
    order = [int(i) for i in manifest["object_id"]]
    assert np.array_equal(arrays["images"], images[order])  # PNG round trip is lossless
    assert attrs["attribute_names"] == list(ATTRIBUTES)
    assert np.array_equal(arrays["attributes"], table.loc[order, list(ATTRIBUTES)].to_numpy())
    names = np.array(attrs["class_names"])[arrays["labels"]]
    assert names.tolist() == table.loc[order, "hair_colour"].tolist()


def test_size_limits_name_what_is_wrong():
    limits = I.SizeLimits(min_side=16, max_aspect=1.5, on_bad_image="fail")
    assert limits.problem(300, 7) == ("300x7: shorter side 7 < min_side 16, aspect ratio "
                                      "42.86 > max_aspect 1.5")
    assert limits.problem(7, 300).startswith("7x300: shorter side 7 < min_side 16, aspect")
    assert limits.problem(24, 16) is None and limits.problem(16, 16) is None
    assert limits.problem(25, 16) == "25x16: aspect ratio 1.56 > max_aspect 1.5"
    assert limits.problem(15, 15) == "15x15: shorter side 15 < min_side 16"


def test_size_limits_from_config_section():
    section = {"resolution": 32, "min_side": None, "max_aspect": 2, "on_bad_image": "warn"}
    assert I.SizeLimits.from_section(section) == I.SizeLimits(32, 2.0, "warn")
    assert I.SizeLimits.from_section({**section, "min_side": 8}).min_side == 8
    with pytest.raises(ValueError, match="data.faces.on_bad_image: must be one of"):
        I.SizeLimits.from_section({**section, "on_bad_image": "skip"})


def folder_with_a_thin_image(tmp_path):
    make_folder(tmp_path / "ffhq", n=4)
    save(np.zeros((7, 300, 3), np.uint8), tmp_path / "ffhq" / "thin.png")
    m = tmp_path / "m.parquet"
    build_manifest("faces", faces_section(tmp_path / "ffhq", labels=False), 0, m,
                   tmp_path / "src")
    return m, tmp_path / "ffhq" / "thin.png"


def test_image_outside_the_limits_fails_the_store_naming_it(tmp_path, caplog):
    m, thin = folder_with_a_thin_image(tmp_path)
    with pytest.raises(ValueError, match=rf"data.faces: 1 images outside min_side 8 / "
                                         rf"max_aspect 1.5, e.g. \['{re.escape(str(thin))} "
                                         rf"\(300x7: shorter side 7 < min_side 8"):
        I.build_images_store(m, tmp_path / "s.zarr", 8, LIMITS)
    assert not (tmp_path / "s.zarr").exists()
    refused = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(refused) == 1 and str(thin) in refused[0].getMessage()


def test_image_outside_the_limits_is_used_with_a_warning(tmp_path, caplog):
    m, thin = folder_with_a_thin_image(tmp_path)
    I.build_images_store(m, tmp_path / "s.zarr", 8, I.SizeLimits(8, 1.5, "warn"))
    arrays, _ = read_zarr(tmp_path / "s.zarr")
    assert len(arrays["images"]) == 5
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warned == [f"data.faces: image {thin} (300x7: shorter side 7 < min_side 8, aspect "
                      "ratio 42.86 > max_aspect 1.5) is used anyway (on_bad_image: warn)"]
