"""DISN ShapenetRender layout: metadata, cameras, sphere-traced renders, readers, errors."""
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from nfws.data.cameras import intrinsics_from_fov, orbit_c2w
from nfws.data.manifest import CLASS_INDEX, NAME_TO_SYNSET
from nfws.data.shapenet_render import (DISN_FOV_X, format_metadata, parse_metadata,
                                       read_nf2vec, read_object_views, read_shapenet_render,
                                       sample_easy_views)
from nfws.data.sphere_trace import (AMBIENT, LIGHT_DIR, object_rng, render_object,
                                    render_objects, render_views)
from nfws.data.sdf_objects import Part, SDFObject
from nfws.data.synthetic3d import generate_objects


def _manifest(tmp_path, records):
    df = pd.DataFrame(records)
    df["class_index"] = [CLASS_INDEX[c] for c in df["class_name"]]
    df["split"] = "train"
    path = tmp_path / "manifest.parquet"
    df.to_parquet(path, index=False)
    return path


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Two synthetic objects rendered at 32 px into the DISN layout."""
    tmp = tmp_path_factory.mktemp("render")
    records = generate_objects(["chair", "airplane"], 1, seed=3, out_dir=tmp / "objects")
    manifest = _manifest(tmp, records)
    render_objects(manifest, tmp / "views", resolution=32, n_views=6, seed=11)
    return tmp, records


def test_easy_view_sampling_follows_disn_ranges():
    v = sample_easy_views(36, np.random.default_rng(0))
    centres = 10.0 * (np.arange(36) + 1)
    assert np.all(np.abs(v["azimuth"] - centres) <= 5)
    assert np.all((v["elevation"] >= 20) & (v["elevation"] <= 30))
    assert np.all((v["dist_ratio"] >= 0.65) & (v["dist_ratio"] <= 1.0))
    assert np.allclose(v["distance"], 1.75 * v["dist_ratio"])
    again = sample_easy_views(36, np.random.default_rng(0))
    assert all(np.array_equal(v[k], again[k]) for k in v)


def test_metadata_lines_have_disn_format_and_round_trip(tmp_path):
    v = sample_easy_views(36, np.random.default_rng(1))
    text = format_metadata(v)
    lines = text.splitlines()
    assert len(lines) == 36
    number = r"-?\d+(\.\d+)?(e-?\d+)?"
    pattern = rf"^\[{number}, {number}, 0, {number}, 35, 32, 1\.75, 0, 0, 0\], $"
    assert all(re.match(pattern, line) for line in lines), lines[0]
    (tmp_path / "m.txt").write_text(text)
    back = parse_metadata(tmp_path / "m.txt")
    for key in ("azimuth", "elevation", "dist_ratio", "distance"):
        assert np.array_equal(back[key], v[key])
    assert np.allclose(back["fov_x"], 2 * math.atan(16 / 35))


def test_sphere_renders_a_disc_of_analytic_radius():
    r, d, res = 0.3, 1.5, 128
    obj = SDFObject("s", "s", [Part("ball", "sphere", (r,))])
    intr = intrinsics_from_fov(DISN_FOV_X, res, res)[None]
    image = render_views(obj, orbit_c2w([33.0], [27.0], [d]), intr, res, res)[0]
    alpha = image[..., 3] > 0
    f = intr[0, 0].item()
    expected = r * f / math.sqrt(d**2 - r**2)   # apparent radius of a sphere's silhouette
    assert math.sqrt(alpha.sum() / math.pi) == pytest.approx(expected, abs=0.3)
    rows, cols = np.nonzero(alpha)
    assert rows.mean() + 0.5 == pytest.approx(res / 2, abs=0.1)
    assert cols.mean() + 0.5 == pytest.approx(res / 2, abs=0.1)
    assert np.all(image[~alpha] == 0)  # transparent background, straight alpha


def test_lambert_shading_at_the_nearest_point():
    # camera on +x: the centre pixel sees the sphere where the normal is (1, 0, 0)
    albedo, res = (0.8, 0.4, 0.2), 65
    obj = SDFObject("s", "s", [Part("ball", "sphere", (0.3,), colour=albedo)])
    image = render_views(obj, orbit_c2w([0.0], [0.0], [1.5]),
                         intrinsics_from_fov(DISN_FOV_X, res, res)[None], res, res)[0]
    cos = LIGHT_DIR[0] / math.sqrt(sum(c * c for c in LIGHT_DIR))
    expected = [255 * a * (AMBIENT + (1 - AMBIENT) * cos) for a in albedo]
    assert image[32, 32, :3].astype(float) == pytest.approx(expected, abs=1.0)
    assert image[32, 32, 3] == 255


def test_disn_layout_on_disk(rendered):
    tmp, records = rendered
    for rec in records:
        easy = tmp / "views" / "image" / NAME_TO_SYNSET[rec["class_name"]] / rec["object_id"] / "easy"
        assert sorted(p.name for p in easy.glob("*.png")) == [f"{i:02d}.png" for i in range(6)]
        assert len((easy / "rendering_metadata.txt").read_text().splitlines()) == 6
        meta = json.loads((easy / "transforms_train.json").read_text())
        assert meta["camera_angle_x"] == pytest.approx(2 * math.atan(16 / 35))
        assert [f["file_path"] for f in meta["frames"]] == [f"./{i:02d}" for i in range(6)]
        with Image.open(easy / "00.png") as im:
            assert im.mode == "RGBA" and im.size == (32, 32)


def test_synthetic_round_trip_through_both_readers(rendered):
    tmp, records = rendered
    rec = records[0]
    folder = tmp / "views" / "image" / NAME_TO_SYNSET[rec["class_name"]] / rec["object_id"]
    obj = SDFObject.load(rec["source"])
    images, views = render_object(obj, 32, 6, object_rng(11, rec["object_id"]))
    expected_c2w = orbit_c2w(views["azimuth"], views["elevation"], views["distance"]).numpy()
    f = 16 * 35 / 16
    for got in (read_shapenet_render(folder), read_nf2vec(folder / "easy")):
        assert np.array_equal(got["images"], images)
        assert np.allclose(got["c2w"], expected_c2w, atol=1e-6)
        assert np.allclose(got["intrinsics"], [[f, f, 16, 16]] * 6)
        assert got["images"].dtype == np.uint8 and got["c2w"].dtype == np.float32
    assert images[..., 3].any()


def test_reader_resizes_and_rescales_focal(rendered):
    tmp, records = rendered
    rec = records[0]
    folder = tmp / "views" / "image" / NAME_TO_SYNSET[rec["class_name"]] / rec["object_id"]
    full = read_object_views(folder, "shapenet_render")
    half = read_object_views(folder, "shapenet_render", resolution=16)
    assert half["images"].shape == (6, 16, 16, 4)
    assert np.allclose(half["intrinsics"], full["intrinsics"] / 2)
    # area-averaged alpha keeps the silhouette's coverage
    assert half["images"][..., 3].mean() == pytest.approx(full["images"][..., 3].mean(), rel=0.02)


def _copy_object(rendered, tmp_path):
    import shutil
    tmp, records = rendered
    rec = records[1]
    src = tmp / "views" / "image" / NAME_TO_SYNSET[rec["class_name"]] / rec["object_id"]
    dst = tmp_path / "obj"
    shutil.copytree(src, dst)
    return dst


def test_missing_view_png_is_named(rendered, tmp_path):
    obj = _copy_object(rendered, tmp_path)
    (obj / "easy" / "03.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"easy/03\.png: view image missing"):
        read_shapenet_render(obj)
    with pytest.raises(FileNotFoundError, match=r"easy/03\.png: view image missing"):
        read_nf2vec(obj / "easy")


def test_corrupt_png_is_named(rendered, tmp_path):
    obj = _copy_object(rendered, tmp_path)
    (obj / "easy" / "02.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ValueError, match=r"easy/02\.png: unreadable or corrupt image"):
        read_shapenet_render(obj)


def test_image_without_alpha_is_rejected(rendered, tmp_path):
    obj = _copy_object(rendered, tmp_path)
    Image.new("RGB", (32, 32)).save(obj / "easy" / "01.png")
    with pytest.raises(ValueError, match=r"01\.png: image has no alpha channel"):
        read_shapenet_render(obj)


def _point_frame(obj, index, file_path):
    """Rewrite frame ``index`` of the object's transforms to ``file_path``."""
    path = obj / "easy" / "transforms_train.json"
    meta = json.loads(path.read_text())
    meta["frames"][index]["file_path"] = file_path
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize("entry", ["../../other/easy/00", "./../easy/../../other/easy/00.png",
                                   "ABSOLUTE"])
def test_frame_path_outside_the_object_is_refused(rendered, tmp_path, entry):
    obj = _copy_object(rendered, tmp_path)
    other = tmp_path / "other" / "easy"
    other.mkdir(parents=True)
    Image.new("RGBA", (32, 32)).save(other / "00.png")
    entry = str(other / "00") if entry == "ABSOLUTE" else entry
    _point_frame(obj, 4, entry)
    with pytest.raises(ValueError, match=r"easy/transforms_train\.json: frames\[4\]\.file_path: "
                                         r"'.*00(\.png)?' resolves to .*other/easy/00\.png, "
                                         r"outside .*obj/easy"):
        read_nf2vec(obj / "easy")


def test_view_symlinked_to_another_object_is_refused(rendered, tmp_path):
    obj = _copy_object(rendered, tmp_path)
    other = tmp_path / "other.png"
    (obj / "easy" / "00.png").rename(other)
    (obj / "easy" / "00.png").symlink_to(other)
    with pytest.raises(ValueError, match=r"rendering_metadata\.txt: view 0: '00\.png' resolves "
                                         r"to .*other\.png, outside .*obj/easy"):
        read_shapenet_render(obj)
    with pytest.raises(ValueError, match=r"transforms_train\.json: frames\[0\]\.file_path"):
        read_nf2vec(obj / "easy")


def test_links_inside_the_object_and_a_linked_object_folder_are_read(rendered, tmp_path):
    obj = _copy_object(rendered, tmp_path)
    expected = read_shapenet_render(obj)
    (obj / "easy" / "pngs").mkdir()
    (obj / "easy" / "05.png").rename(obj / "easy" / "pngs" / "05.png")
    (obj / "easy" / "05.png").symlink_to(Path("pngs") / "05.png")
    _point_frame(obj, 1, "pngs/../01")
    linked = tmp_path / "linked_object"
    linked.symlink_to(obj, target_is_directory=True)
    for got in (read_shapenet_render(linked), read_nf2vec(linked / "easy")):
        assert np.array_equal(got["images"], expected["images"])


@pytest.mark.parametrize("line,why", [
    ("[10.0, 25.0, 0, 0.8, 35, 32, 1.75, 0, 0], ", "expected 10 finite values"),
    ("10.0, 25.0, 0, 0.8, 35, 32, 1.75, 0, 0, 0", "expected"),
    ("[10.0, abc, 0, 0.8, 35, 32, 1.75, 0, 0, 0], ", "non-numeric"),
    ("[10.0, 25.0, 0, 0.8, 35, 32, 1.75, 0.2, 0, 0], ", "shifted"),
])
def test_malformed_metadata_line_is_named(rendered, tmp_path, line, why):
    obj = _copy_object(rendered, tmp_path)
    meta = obj / "easy" / "rendering_metadata.txt"
    lines = meta.read_text().splitlines()
    lines[2] = line
    meta.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"rendering_metadata\.txt:3: .*{why}"):
        read_shapenet_render(obj)


def test_missing_paths_and_bad_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere/easy: ShapenetRender view folder missing"):
        read_shapenet_render(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="transforms_train.json: nf2vec transforms missing"):
        read_nf2vec(tmp_path)
    with pytest.raises(ValueError, match="views layout"):
        read_object_views(tmp_path, "blender")
    (tmp_path / "transforms_train.json").write_text(json.dumps(
        {"camera_angle_x": 0.8, "frames": [{"file_path": "./00", "transform_matrix": [[1, 0], [0, 1]]}]}))
    with pytest.raises(ValueError, match="transforms_train.json: .*4x4"):
        read_nf2vec(tmp_path)


def test_render_stage_rejects_unknown_class_and_non_synthetic_rows(tmp_path):
    records = generate_objects(["car"], 1, seed=0, out_dir=tmp_path / "o")
    manifest = _manifest(tmp_path, [{**records[0], "source": str(tmp_path / "some_dir")}])
    with pytest.raises(ValueError, match="not a synthetic object JSON"):
        render_objects(manifest, tmp_path / "v", resolution=16, n_views=2)
    obj = SDFObject.load(records[0]["source"])
    obj.class_name = "boat"
    obj.save(tmp_path / "boat.json")
    df = pd.DataFrame([{"object_id": "car_00000", "class_name": "boat", "class_index": 0,
                        "split": "train", "source": str(tmp_path / "boat.json")}])
    df.to_parquet(tmp_path / "m2.parquet", index=False)
    with pytest.raises(ValueError, match="m2.parquet: unknown class 'boat'"):
        render_objects(tmp_path / "m2.parquet", tmp_path / "v", resolution=16, n_views=2)
