"""The DISN ShapenetRender layout and nf2vec's transforms layout: write and read.

DISN: ``<root>/image/<synset>/<object_id>/easy/NN.png`` plus ``rendering_metadata.txt``;
nf2vec: ``<object_dir>/transforms_train.json``. The render stage writes both into the
``easy`` folder. Both readers reduce their layout to (image paths, c2w, horizontal fov) and
share one loader, so there is a single camera path. Every view image must resolve inside
its object's folder (``nfws.data.paths.confined``).
Layouts: docs/recipes.md, "ShapenetRender on disk (DISN variant)".
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nfws.data.cameras import intrinsics_from_fov, orbit_c2w
from nfws.data.manifest import NAME_TO_SYNSET
from nfws.data.paths import confined
from nfws.store import atomic_path

FOCAL_MM, SENSOR_MM, MAX_DISTANCE = 35.0, 32.0, 1.75
DISN_FOV_X = 2 * math.atan(0.5 * SENSOR_MM / FOCAL_MM)
METADATA = "rendering_metadata.txt"
TRANSFORMS = "transforms_train.json"
LAYOUTS = ("shapenet_render", "nf2vec")


def class_synset(class_name: str, where="class table") -> str:
    """ShapeNet synset folder name of a class; ``where`` names the file for errors."""
    if class_name not in NAME_TO_SYNSET:
        raise ValueError(f"{where}: unknown class {class_name!r}; known: {list(NAME_TO_SYNSET)}")
    return NAME_TO_SYNSET[class_name]


# ----- cameras --------------------------------------------------------------------------
def sample_easy_views(n_views: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """DISN easy views: azimuth = step (i + 1) ± step/2 with step = 360/n (10 ± 5 for 36),
    elevation U(20, 30)°, dist_ratio U(0.65, 1.0), distance = dist_ratio * 1.75."""
    if n_views < 1:
        raise ValueError(f"data.shapenet.n_views: must be >= 1, got {n_views}")
    step = 360.0 / n_views
    azimuth = step * (np.arange(n_views) + 1) + rng.uniform(-step / 2, step / 2, n_views)
    elevation = rng.uniform(20.0, 30.0, n_views)
    dist_ratio = rng.uniform(0.65, 1.0, n_views)
    return {"azimuth": azimuth, "elevation": elevation, "dist_ratio": dist_ratio,
            "distance": dist_ratio * MAX_DISTANCE}


def format_metadata(views: dict[str, np.ndarray]) -> str:
    """rendering_metadata.txt text; floats written with repr so they read back exactly."""
    lines = [f"[{float(a)!r}, {float(e)!r}, 0, {float(r)!r}, {FOCAL_MM:g}, {SENSOR_MM:g}, "
             f"{MAX_DISTANCE!r}, 0, 0, 0], "
             for a, e, r in zip(views["azimuth"], views["elevation"], views["dist_ratio"])]
    return "\n".join(lines) + "\n"


def parse_metadata(path) -> dict[str, np.ndarray]:
    """Per-view azimuth, elevation, dist_ratio, distance and horizontal fov from metadata."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: rendering metadata missing")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.strip()
        if not text:
            continue
        text = text.rstrip(",").strip()
        if not (text.startswith("[") and text.endswith("]")):
            raise ValueError(f"{path}:{number}: expected '[...], ', got {line!r}")
        try:
            values = [float(v) for v in text[1:-1].split(",")]
        except ValueError as err:
            raise ValueError(f"{path}:{number}: non-numeric value in {line!r}") from err
        if len(values) != 10 or not all(math.isfinite(v) for v in values):
            raise ValueError(f"{path}:{number}: expected 10 finite values, got {line!r}")
        if any(values[7:]):
            raise ValueError(f"{path}:{number}: shifted ('hard') views are not supported, "
                             f"got shift {values[7:]}")
        if values[4] <= 0 or values[5] <= 0 or values[3] <= 0 or values[6] <= 0:
            raise ValueError(f"{path}:{number}: focal, sensor, dist_ratio and distance must "
                             f"be > 0, got {line!r}")
        rows.append(values)
    if not rows:
        raise ValueError(f"{path}: no views listed")
    v = np.asarray(rows, dtype=np.float64)
    return {"azimuth": v[:, 0], "elevation": v[:, 1], "dist_ratio": v[:, 3],
            "distance": v[:, 3] * v[:, 6], "fov_x": 2 * np.arctan(0.5 * v[:, 5] / v[:, 4])}


# ----- writing --------------------------------------------------------------------------
def write_object_views(object_dir, images: np.ndarray, views: dict[str, np.ndarray]) -> None:
    """Write ``<object_dir>/easy/`` atomically: PNGs, DISN metadata and nf2vec transforms."""
    c2w = orbit_c2w(views["azimuth"], views["elevation"], views["distance"]).numpy()
    with atomic_path(object_dir) as tmp:
        easy = tmp / "easy"
        easy.mkdir(parents=True)
        for i, image in enumerate(images):
            Image.fromarray(image, "RGBA").save(easy / f"{i:02d}.png", compress_level=1)
        (easy / METADATA).write_text(format_metadata(views))
        transforms = {"camera_angle_x": DISN_FOV_X,
                      "frames": [{"file_path": f"./{i:02d}", "transform_matrix": m.tolist()}
                                 for i, m in enumerate(c2w)]}
        (easy / TRANSFORMS).write_text(json.dumps(transforms, indent=1))


# ----- reading --------------------------------------------------------------------------
def read_shapenet_render(object_dir, resolution: int | None = None) -> dict[str, np.ndarray]:
    """Views of ``<root>/image/<synset>/<id>`` (reads its ``easy`` folder)."""
    easy = Path(object_dir) / "easy"
    if not easy.is_dir():
        raise FileNotFoundError(f"{easy}: ShapenetRender view folder missing")
    meta = parse_metadata(easy / METADATA)
    c2w = orbit_c2w(meta["azimuth"], meta["elevation"], meta["distance"])
    paths = [confined(f"{i:02d}.png", easy, f"{easy / METADATA}: view {i}")
             for i in range(len(c2w))]
    return load_frames(paths, c2w, meta["fov_x"], resolution)


def read_nf2vec(object_dir, resolution: int | None = None) -> dict[str, np.ndarray]:
    """Views of an nf2vec object folder holding ``transforms_train.json``."""
    path = Path(object_dir) / TRANSFORMS
    if not path.exists():
        raise FileNotFoundError(f"{path}: nf2vec transforms missing")
    try:
        meta = json.loads(path.read_text())
        fov = float(meta["camera_angle_x"])
        frames = meta["frames"]
        files = [str(f["file_path"]) for f in frames]
        c2w = torch.tensor([f["transform_matrix"] for f in frames], dtype=torch.float32)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: malformed transforms ({err!r})") from err
    if not frames:
        raise ValueError(f"{path}: no frames")
    if c2w.shape[1:] != (4, 4) or not bool(torch.isfinite(c2w).all()):
        raise ValueError(f"{path}: every transform_matrix must be a finite 4x4 matrix")
    if not torch.allclose(c2w[:, 3], torch.tensor([0.0, 0.0, 0.0, 1.0])):
        raise ValueError(f"{path}: transform_matrix last row must be [0, 0, 0, 1]")
    if not (0 < fov < math.pi):
        raise ValueError(f"{path}: camera_angle_x must lie in (0, pi), got {fov}")
    paths = [confined(f if f.endswith(".png") else f"{f}.png", path.parent,
                      f"{path}: frames[{i}].file_path") for i, f in enumerate(files)]
    return load_frames(paths, c2w, np.full(len(paths), fov), resolution)


READERS = {"shapenet_render": read_shapenet_render, "nf2vec": read_nf2vec}


def read_object_views(object_dir, layout: str, resolution: int | None = None):
    """Images uint8 [V, H, W, 4], c2w float32 [V, 4, 4], intrinsics float32 [V, 4]."""
    if layout not in READERS:
        raise ValueError(f"data.shapenet.source (views layout): must be one of {LAYOUTS}, got {layout!r}")
    return READERS[layout](object_dir, resolution)


def load_frames(paths: list[Path], c2w: torch.Tensor, fov_x: np.ndarray,
                resolution: int | None) -> dict[str, np.ndarray]:
    """The shared camera path: decode RGBA PNGs, resize square images, derive intrinsics."""
    images = np.stack([_read_rgba(p, resolution) for p in paths])
    size = images.shape[1]
    intrinsics = torch.stack([intrinsics_from_fov(float(f), size, size) for f in fov_x])
    return {"images": images, "c2w": c2w.to(torch.float32).numpy(),
            "intrinsics": intrinsics.numpy()}


def _read_rgba(path: Path, resolution: int | None) -> np.ndarray:
    if not path.exists():
        raise FileNotFoundError(f"{path}: view image missing")
    try:
        with Image.open(path) as im:
            im.load()
            has_alpha = im.mode in ("RGBA", "LA") or "transparency" in im.info
            image = im.convert("RGBA")
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"{path}: unreadable or corrupt image ({err})") from err
    if not has_alpha:
        raise ValueError(f"{path}: image has no alpha channel (mode {im.mode})")
    if image.width != image.height:
        raise ValueError(f"{path}: views must be square, got {image.width}x{image.height}")
    if resolution is not None and image.width != resolution:
        # resize premultiplied so transparent pixels do not bleed colour into edges
        smaller = resolution < image.width
        image = image.convert("RGBa").resize(
            (resolution, resolution),
            Image.Resampling.BOX if smaller else Image.Resampling.BILINEAR).convert("RGBA")
    return np.asarray(image, dtype=np.uint8)
