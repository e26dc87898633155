"""Synthetic face images with CelebA-style attributes, drawn analytically.

They stand in for FFHQ in the default CPU run: hair colour is the class; smiling,
eyeglasses, beard and long hair are binary attributes. Face i of seed s is drawn from its
own generator seeded with (s, i), so a set is identical for a given seed and the first n
faces of a larger set are the n faces of a smaller one. ``write_face_folder`` writes the
PNGs and ``attributes.csv`` (the labels CSV of ``nfws.data.images``).
Geometry and anti-aliasing: docs/design.md, "Synthetic faces".
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from nfws.data.images import image_folder_records
from nfws.data.manifest import positive_int, register_source
from nfws.store import atomic_path

HAIR_COLOURS = ("black", "blond", "brown", "gray", "red")
HAIR_RGB = np.array([(35, 30, 30), (230, 200, 130), (115, 75, 45), (170, 170, 170),
                     (175, 65, 35)], dtype=np.float32)
HAIR_JITTER = 12.0  # per channel, keeps every hair colour nearest to its own palette entry
ATTRIBUTES = ("smiling", "eyeglasses", "beard", "long_hair")
ATTRIBUTE_PROBABILITY = {"smiling": 0.5, "eyeglasses": 0.4, "beard": 0.3, "long_hair": 0.5}
LABEL_COLUMN = "hair_colour"
ATTRIBUTES_CSV = "attributes.csv"

SKIN_LIGHT = np.array([255, 224, 196], dtype=np.float32)
SKIN_DARK = np.array([105, 68, 48], dtype=np.float32)
IRIS_RGB = np.array([(90, 60, 30), (60, 110, 170), (70, 120, 70)], dtype=np.float32)


@dataclass(frozen=True)
class FaceParams:
    """Everything that defines a batch of B faces (arrays with leading axis B).

    centre, scale: fractions of the image size (scale = face half-width); roll in radians;
    yaw_shift: horizontal offset of the facial features in local units (head turn);
    colours RGB in 0..255; hair_colour: index into HAIR_COLOURS; flags: bool.
    """

    centre: np.ndarray
    scale: np.ndarray
    roll: np.ndarray
    yaw_shift: np.ndarray
    skin: np.ndarray
    hair: np.ndarray
    background: np.ndarray
    clothes: np.ndarray
    iris: np.ndarray
    frame: np.ndarray
    hair_colour: np.ndarray
    smiling: np.ndarray
    eyeglasses: np.ndarray
    beard: np.ndarray
    long_hair: np.ndarray

    def __len__(self) -> int:
        return len(self.scale)


def sample_face_params(seed: int, indices) -> FaceParams:
    """Random faces ``indices`` of ``seed`` (each from a generator seeded with (seed, i))."""
    draws = []
    for i in indices:
        rng = np.random.default_rng([int(seed), int(i)])
        hair_colour = rng.integers(len(HAIR_COLOURS))
        flags = {a: rng.random() < p for a, p in ATTRIBUTE_PROBABILITY.items()}
        draws.append(dict(
            centre=np.array([0.5, 0.46]) + rng.uniform(-0.05, 0.05, 2),
            scale=0.25 * rng.uniform(0.92, 1.08),
            roll=np.deg2rad(rng.uniform(-12.0, 12.0)),
            yaw_shift=0.25 * np.sin(np.deg2rad(rng.uniform(-25.0, 25.0))),
            skin=SKIN_LIGHT + rng.random() * (SKIN_DARK - SKIN_LIGHT) + rng.uniform(-8, 8, 3),
            hair=HAIR_RGB[hair_colour] + rng.uniform(-HAIR_JITTER, HAIR_JITTER, 3),
            background=rng.uniform(30.0, 225.0, 3),
            clothes=rng.uniform(20.0, 235.0, 3),
            iris=IRIS_RGB[rng.integers(len(IRIS_RGB))],
            frame=rng.uniform(10.0, 70.0) * np.ones(3),
            hair_colour=hair_colour, **flags))
    return FaceParams(**{name: np.array([d[name] for d in draws])
                         for name in FaceParams.__dataclass_fields__})


class _Canvas:
    """A batch of images painted in painter's order: later shapes cover earlier ones.

    ``focus`` restricts the next shapes to the pixel window that holds a local box in every
    image of the batch, so small features cost a few hundred pixels, not the whole image.
    """

    def __init__(self, params: FaceParams, size: int):
        grid = np.arange(size, dtype=np.float32) + 0.5
        self.size = size
        self.centre = (params.centre * size).astype(np.float32)
        self.px_per_unit = (params.scale * size).astype(np.float32)[:, None, None]
        self.cos = np.cos(params.roll).astype(np.float32)
        self.sin = np.sin(params.roll).astype(np.float32)
        dx = grid[None, None, :] - self.centre[:, 0, None, None]
        dy = grid[None, :, None] - self.centre[:, 1, None, None]
        cos, sin = self.cos[:, None, None], self.sin[:, None, None]
        self._u = (cos * dx + sin * dy) / self.px_per_unit
        self._v = (-sin * dx + cos * dy) / self.px_per_unit
        self.image = np.broadcast_to(params.background[:, None, None, :],
                                     (len(params), size, size, 3)).astype(np.float32)
        self.window = (slice(None), slice(None))

    def focus(self, u0: float, v0: float, u1: float, v1: float) -> None:
        """Work inside the pixel window covering the local box [u0, u1] × [v0, v1]."""
        corners = np.array([(u0, v0), (u0, v1), (u1, v0), (u1, v1)], dtype=np.float32)
        s = self.px_per_unit[:, 0, 0, None]
        x = self.centre[:, 0, None] + s * (self.cos[:, None] * corners[:, 0]
                                          - self.sin[:, None] * corners[:, 1])
        y = self.centre[:, 1, None] + s * (self.sin[:, None] * corners[:, 0]
                                          + self.cos[:, None] * corners[:, 1])
        self.window = (self._span(y), self._span(x))

    def _span(self, z: np.ndarray) -> slice:
        """Pixel indices covering coordinates ``z`` with a 2-pixel margin for soft edges."""
        lo = int(np.clip(np.floor(z.min()) - 2, 0, self.size))
        hi = int(np.clip(np.ceil(z.max()) + 2, 0, self.size))
        return slice(lo, hi)

    @property
    def u(self) -> np.ndarray:
        return self._u[(slice(None), *self.window)]

    @property
    def v(self) -> np.ndarray:
        return self._v[(slice(None), *self.window)]

    def zeros(self) -> np.ndarray:
        return np.zeros_like(self.u)

    def ellipse(self, cu, cv, a, b) -> np.ndarray:
        """Coverage of the axis-aligned local ellipse centred (cu, cv) with semi-axes a, b.

        Signed distance ≈ (q - 1) / |∇q| with q the normalised radius (exact on the boundary).
        """
        x = self.u - _col(cu)
        y = self.v - _col(cv)
        a, b = _col(a), _col(b)
        q = np.sqrt((x / a) ** 2 + (y / b) ** 2)
        grad = np.sqrt((x / a ** 2) ** 2 + (y / b ** 2) ** 2)
        dist = (q - 1.0) * q / np.maximum(grad, 1e-6)
        return np.clip(0.5 - dist * self.px_per_unit, 0.0, 1.0)

    def below(self, v0) -> np.ndarray:
        """Coverage of the local half-plane v > v0."""
        return np.clip(0.5 + (self.v - _col(v0)) * self.px_per_unit, 0.0, 1.0)

    def paint(self, coverage: np.ndarray, colour, where=None) -> None:
        """Composite ``colour`` [B, 3] with ``coverage`` over the window, for images ``where``."""
        if where is not None:
            coverage = coverage * _col(np.asarray(where, dtype=np.float32))
        alpha = coverage[..., None]
        colour = np.asarray(colour, dtype=np.float32)[:, None, None, :]
        region = self.image[(slice(None), *self.window)]
        region += alpha * (colour - region)


def _col(x) -> np.ndarray:
    """A per-image scalar [B] (or a constant) shaped to broadcast over [B, H, W]."""
    x = np.asarray(x, dtype=np.float32)
    return x[:, None, None] if x.ndim == 1 else x


def draw_faces(params: FaceParams, size: int) -> np.ndarray:
    """Render faces as uint8 [B, size, size, 3]."""
    c = _Canvas(params, size)
    b = len(params)
    ones = np.ones(b, dtype=np.float32)
    skin, hair = params.skin, params.hair
    shade = skin * 0.82
    sx = params.yaw_shift  # horizontal feature offset of the head turn
    eye_scale = 1.0 - 0.6 * sx * np.array([[1.0], [-1.0]])  # far eye narrower
    eye_u = [side * 0.38 + sx * 0.6 for side in (-1.0, 1.0)]

    c.paint(c.ellipse(0.0, 2.7, 2.3 * ones, 1.3 * ones), params.clothes)
    c.paint(c.ellipse(0.0, 0.7, 1.38 * ones, 2.0 * ones), hair, where=params.long_hair)
    c.paint(c.ellipse(0.0, 1.45, 0.45 * ones, 0.8 * ones), shade)
    for side in (-1.0, 1.0):
        c.paint(c.ellipse(side * 1.0 - 0.3 * sx, 0.1, 0.2 * ones, 0.3 * ones), shade)
    c.paint(c.ellipse(0.0, -0.35, 1.12 * ones, 1.15 * ones), hair)
    c.paint(c.ellipse(0.0, 0.0, ones, 1.3 * ones), skin)
    c.focus(-1.2, -1.6, 1.2, -0.6)
    c.paint(c.ellipse(0.0, -0.35, 1.12 * ones, 1.15 * ones) * (1.0 - c.below(-0.78)), hair)

    if params.beard.any():
        c.focus(-1.1, 0.3, 1.1, 1.4)
        chin = c.ellipse(0.0, 0.0, 1.02 * ones, 1.33 * ones) * c.below(0.42)
        c.paint(chin, hair * 0.9, where=params.beard)
        c.paint(c.ellipse(sx * 0.6, 0.5, 0.32 * ones, 0.08 * ones), hair * 0.8,
                where=params.beard)

    c.focus(-0.9, -0.6, 0.9, -0.05)
    for k in range(2):
        c.paint(c.ellipse(eye_u[k], -0.47, 0.22 * eye_scale[k], 0.05 * ones), hair * 0.85)
        c.paint(c.ellipse(eye_u[k], -0.22, 0.17 * eye_scale[k], 0.09 * ones),
                np.full((b, 3), 245.0))
        c.paint(c.ellipse(eye_u[k], -0.22, 0.075 * eye_scale[k], 0.075 * ones), params.iris)
        c.paint(c.ellipse(eye_u[k], -0.22, 0.035 * eye_scale[k], 0.035 * ones),
                np.zeros((b, 3)))
    c.focus(-0.4, 0.1, 0.4, 0.35)
    c.paint(c.ellipse(sx, 0.22, 0.11 * ones, 0.07 * ones), shade)

    c.focus(-0.6, 0.4, 0.6, 0.85)
    mu = sx * 0.6
    lips = skin * 0.55 + np.array([90.0, 10.0, 15.0])
    open_mouth = c.ellipse(mu, 0.62, 0.32 * ones, 0.18 * ones) * c.below(0.62)
    c.paint(open_mouth, np.tile([110.0, 25.0, 35.0], (b, 1)), where=params.smiling)
    c.paint(c.ellipse(mu, 0.65, 0.27 * ones, 0.05 * ones) * c.below(0.62),
            np.full((b, 3), 240.0), where=params.smiling)
    c.paint(c.ellipse(mu, 0.64, 0.26 * ones, 0.045 * ones), lips, where=~params.smiling)

    if params.eyeglasses.any():
        c.focus(-1.2, -0.5, 1.2, 0.0)
        frame = c.zeros()
        for k, side in enumerate((-1.0, 1.0)):
            outer = c.ellipse(eye_u[k], -0.22, 0.26 * eye_scale[k], 0.18 * ones)
            inner = c.ellipse(eye_u[k], -0.22, 0.215 * eye_scale[k], 0.135 * ones)
            c.paint(inner, params.frame, where=params.eyeglasses * 0.15)
            frame = np.maximum(frame, outer - inner)
            temple = c.ellipse(side * 0.82 + sx * 0.3, -0.24, 0.2 * ones, 0.025 * ones)
            frame = np.maximum(frame, temple)
        frame = np.maximum(frame, c.ellipse(sx * 0.6, -0.25, 0.16 * ones, 0.025 * ones))
        c.paint(frame, params.frame, where=params.eyeglasses)

    return np.clip(np.rint(c.image), 0, 255).astype(np.uint8)


def attribute_table(params: FaceParams) -> pd.DataFrame:
    """The CelebA-style labels of a batch: hair colour name and 0/1 attribute flags."""
    table = {LABEL_COLUMN: [HAIR_COLOURS[i] for i in params.hair_colour]}
    table.update({a: getattr(params, a).astype(np.int64) for a in ATTRIBUTES})
    return pd.DataFrame(table)


def generate_faces(n: int, seed: int, size: int = 128, batch: int = 64):
    """The first ``n`` faces of ``seed``: (uint8 [n, size, size, 3], attribute table)."""
    if n < 1 or size < 8:
        raise ValueError(f"data.faces: need count >= 1 and resolution >= 8, got {n}, {size}")
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    tables = []
    for start in tqdm(range(0, n, batch), desc="faces", unit="batch"):
        params = sample_face_params(seed, range(start, min(n, start + batch)))
        images[start:start + len(params)] = draw_faces(params, size)
        tables.append(attribute_table(params))
    return images, pd.concat(tables, ignore_index=True)


def write_face_folder(out_dir, n: int, seed: int, size: int = 128) -> None:
    """Write faces as ``<out_dir>/<i:06d>.png`` plus ``attributes.csv`` (the labels CSV
    format of ``nfws.data.images``), atomically as one directory."""
    images, table = generate_faces(n, seed, size)
    names = [f"{i:06d}.png" for i in range(n)]
    with atomic_path(Path(out_dir)) as tmp:
        tmp.mkdir()
        for name, image in zip(names, images):
            Image.fromarray(image).save(tmp / name)
        table.insert(0, "file", names)
        table.to_csv(tmp / ATTRIBUTES_CSV, index=False)


@register_source("faces", "synthetic")
def synthetic_face_records(section: dict, seed: int, key: str, out_dir: Path) -> pd.DataFrame:
    """Write ``count`` synthetic faces at ``resolution`` into ``out_dir`` and list them."""
    count = positive_int(section, "count", key)
    write_face_folder(out_dir, count, seed, positive_int(section, "resolution", key))
    return image_folder_records(out_dir, out_dir / ATTRIBUTES_CSV, count, key)


def faces_labels_csv(section: dict, sources_dir) -> str | None:
    """The labels CSV the faces images store reads attributes from (None: unlabelled)."""
    if section.get("source") == "synthetic":
        return str(Path(sources_dir) / ATTRIBUTES_CSV)
    return section.get("labels_csv")
