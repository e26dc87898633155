import dataclasses

import numpy as np
import pandas as pd
from PIL import Image

from nfws.data import faces as F

SIZE = 128


def frontal(n: int = 1, **flags) -> F.FaceParams:
    """Hand-set faces: centred, half-width 0.25 of the image (32 px at 128), no pose."""
    base = dict(
        centre=np.tile([0.5, 0.5], (n, 1)), scale=np.full(n, 0.25), roll=np.zeros(n),
        yaw_shift=np.zeros(n), skin=np.tile([220.0, 180.0, 150.0], (n, 1)),
        hair=np.tile(F.HAIR_RGB[2], (n, 1)), background=np.tile([40.0, 90.0, 200.0], (n, 1)),
        clothes=np.tile([200.0, 200.0, 60.0], (n, 1)), iris=np.tile(F.IRIS_RGB[0], (n, 1)),
        frame=np.full((n, 3), 20.0), hair_colour=np.full(n, 2),
        smiling=np.zeros(n, bool), eyeglasses=np.zeros(n, bool), beard=np.zeros(n, bool),
        long_hair=np.zeros(n, bool))
    base.update({k: np.full(n, v) for k, v in flags.items()})
    return F.FaceParams(**base)


def pixel(u: float, v: float) -> tuple[int, int]:
    """(row, col) of the pixel holding local point (u, v) of a ``frontal`` face."""
    return int(SIZE * 0.5 + 32 * v), int(SIZE * 0.5 + 32 * u)


def local_v_of_rows() -> np.ndarray:
    return (np.arange(SIZE) + 0.5 - SIZE * 0.5) / 32


def changed_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return local_v_of_rows()[np.any(a != b, axis=(1, 2))]


def test_same_seed_same_faces_and_prefix_stable():
    a, ta = F.generate_faces(6, seed=3, size=32)
    b, tb = F.generate_faces(6, seed=3, size=32)
    c, _ = F.generate_faces(6, seed=4, size=32)
    d, td = F.generate_faces(3, seed=3, size=32)
    assert np.array_equal(a, b) and ta.equals(tb)
    assert not np.array_equal(a, c)
    assert np.array_equal(a[:3], d) and ta.iloc[:3].equals(td)
    assert a.dtype == np.uint8 and a.shape == (6, 32, 32, 3)


def test_eyeglasses_draw_frames_around_the_eyes_only():
    off = F.draw_faces(frontal(), SIZE)[0]
    on = F.draw_faces(frontal(eyeglasses=True), SIZE)[0]
    v = changed_rows(off, on)
    assert len(v) > 0 and v.min() >= -0.45 and v.max() <= 0.0
    # left rim: between the semi-axes 0.215 and 0.26 left of the eye centre (-0.38, -0.22)
    r, c = pixel(-0.38 - 0.2375, -0.22)
    assert np.abs(on[r, c].astype(int) - 20).max() <= 3
    assert np.abs(off[r, c].astype(int) - 20).min() > 100


def test_smile_opens_the_mouth():
    closed = F.draw_faces(frontal(), SIZE)[0]
    smile = F.draw_faces(frontal(smiling=True), SIZE)[0]
    v = changed_rows(closed, smile)
    assert len(v) > 0 and v.min() >= 0.4 and v.max() <= 0.85
    r, c = pixel(0.0, 0.75)  # inside the open mouth, below the teeth
    assert np.abs(smile[r, c].astype(int) - [110, 25, 35]).max() <= 2
    assert np.abs(closed[r, c].astype(int) - [220, 180, 150]).max() <= 2  # skin


def test_beard_covers_the_lower_face_in_hair_colour():
    bare = F.draw_faces(frontal(), SIZE)[0]
    beard = F.draw_faces(frontal(beard=True), SIZE)[0]
    v = changed_rows(bare, beard)
    assert len(v) > 0 and v.min() >= 0.35 and v.max() <= 1.4
    r, c = pixel(0.6, 1.0)  # cheek below the mouth
    assert np.abs(beard[r, c].astype(float) - 0.9 * F.HAIR_RGB[2]).max() <= 2


def test_hair_colour_label_matches_the_hair_on_top_of_the_head():
    params = F.sample_face_params(11, range(40))
    images = F.draw_faces(params, SIZE)
    assert len(set(params.hair_colour.tolist())) == len(F.HAIR_COLOURS)
    for i in range(len(params)):
        # local (0, -1.4): inside the hair cap (top at -1.5), above the face (top at -1.3)
        s = params.scale[i] * SIZE
        cos, sin = np.cos(params.roll[i]), np.sin(params.roll[i])
        x = params.centre[i, 0] * SIZE + s * (-sin * -1.4)
        y = params.centre[i, 1] * SIZE + s * (cos * -1.4)
        patch = images[i, int(y) - 1:int(y) + 2, int(x) - 1:int(x) + 2].reshape(-1, 3)
        nearest = np.argmin(np.linalg.norm(F.HAIR_RGB - patch.mean(0), axis=1))
        assert F.HAIR_COLOURS[nearest] == F.HAIR_COLOURS[params.hair_colour[i]]


def test_soft_edges_preserve_area():
    canvas = F._Canvas(frontal(), SIZE)
    coverage = canvas.ellipse(0.0, 0.0, np.array([0.3]), np.array([0.5]))
    # semi-axes 9.6 px and 16 px: area π·9.6·16
    assert abs(coverage.sum() - np.pi * 9.6 * 16) < 0.01 * np.pi * 9.6 * 16
    partial = ((coverage > 0) & (coverage < 1)).sum()
    assert partial > 0  # anti-aliased rim, not a hard edge


def test_attributes_follow_their_probabilities():
    table = F.attribute_table(F.sample_face_params(0, range(2000)))
    for name, p in F.ATTRIBUTE_PROBABILITY.items():
        assert abs(table[name].mean() - p) < 0.05
    shares = table[F.LABEL_COLUMN].value_counts(normalize=True)
    assert set(shares.index) == set(F.HAIR_COLOURS) and shares.min() > 0.15


def test_write_face_folder(tmp_path):
    out = tmp_path / "faces"
    F.write_face_folder(out, 5, seed=2, size=24)
    table = pd.read_csv(out / F.ATTRIBUTES_CSV)
    assert list(table.columns) == ["file", F.LABEL_COLUMN, *F.ATTRIBUTES]
    assert table["file"].tolist() == [f"{i:06d}.png" for i in range(5)]
    images, expected = F.generate_faces(5, seed=2, size=24)
    assert table.drop(columns="file").equals(expected)
    assert np.array_equal(np.asarray(Image.open(out / "000003.png")), images[3])


def test_pose_moves_the_face():
    params = frontal(2)
    turned = dataclasses.replace(params, roll=np.array([0.0, 0.2]))
    images = F.draw_faces(turned, 64)
    assert not np.array_equal(images[0], images[1])


def test_focus_windows_clip_nothing(monkeypatch):
    """Painting small features inside windows must equal painting them on the whole image."""
    params = F.sample_face_params(5, range(48))
    windowed = F.draw_faces(params, 96)
    monkeypatch.setattr(F._Canvas, "focus", lambda self, *box: None)
    assert np.array_equal(windowed, F.draw_faces(params, 96))
