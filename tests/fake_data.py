"""Tiny fake real-data trees in the on-disk layouts the full-scale configs read.

Written from the layout descriptions in docs/recipes.md (not with the project's own
writers), so a reader that drifts from the real layout fails here. Images are small RGBA
discs on a transparent background; cameras orbit the origin like DISN's easy views.
"""
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

#: Two ShapeNet classes (airplane, car) for every fake 3D tree.
SYNSETS = ("02691156", "02958343")
FOCAL_MM, SENSOR_MM, MAX_DISTANCE = 35.0, 32.0, 1.75


def disc_rgba(size: int, rng: np.random.Generator) -> np.ndarray:
    """A coloured disc of random radius and colour on a transparent background."""
    yy, xx = np.mgrid[:size, :size] + 0.5
    radius = rng.uniform(0.2, 0.4) * size
    inside = (xx - size / 2) ** 2 + (yy - size / 2) ** 2 < radius ** 2
    image = np.zeros((size, size, 4), np.uint8)
    image[inside, :3] = rng.integers(30, 256, 3, dtype=np.uint8)
    image[inside, 3] = 255
    return image


def orbit_c2w(azimuth_deg: float, elevation_deg: float, distance: float) -> list[list[float]]:
    """OpenGL camera-to-world at distance·(cos el cos az, sin el, cos el sin az), looking at 0."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    eye = distance * np.array([math.cos(el) * math.cos(az), math.sin(el),
                               math.cos(el) * math.sin(az)])
    back = eye / np.linalg.norm(eye)                   # camera +z points away from the target
    right = np.cross([0.0, 1.0, 0.0], back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, up, back, eye
    return c2w.tolist()


def easy_views(n_views: int, rng: np.random.Generator):
    """(azimuth, elevation, dist_ratio) of DISN's easy views."""
    step = 360.0 / n_views
    return [(step * (i + 1) + rng.uniform(-step / 2, step / 2), rng.uniform(20, 30),
             rng.uniform(0.65, 1.0)) for i in range(n_views)]


def disn_tree(root, objects_per_synset: int = 4, n_views: int = 36, size: int = 24,
              seed: int = 0) -> Path:
    """``<root>/image/<synset>/<model_id>/easy/{00..}.png`` + ``rendering_metadata.txt``."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for synset in SYNSETS:
        for k in range(objects_per_synset):
            easy = root / "image" / synset / f"model{k:03d}" / "easy"
            easy.mkdir(parents=True)
            lines = []
            for i, (az, el, ratio) in enumerate(easy_views(n_views, rng)):
                Image.fromarray(disc_rgba(size, rng), "RGBA").save(easy / f"{i:02d}.png")
                lines.append(f"[{az}, {el}, 0, {ratio}, 35, 32, 1.75, 0, 0, 0], ")
            (easy / "rendering_metadata.txt").write_text("\n".join(lines) + "\n")
    return root


def nf2vec_tree(root, objects_per_synset: int = 3, n_views: int = 36, size: int = 24,
                seed: int = 0) -> tuple[Path, Path]:
    """``<root>/data/<synset>/<model_id>/transforms_train.json`` + ``train/r_i.png``, and
    ``<root>/splits/{train,validation,test}.json`` putting one object of each class in
    every split (entries as nf2vec writes them: ``./data/data_TRAINED/<synset>/<id>``).
    Returns (data root, split directory)."""
    rng = np.random.default_rng(seed)
    data, splits = Path(root) / "data", Path(root) / "splits"
    split_names = ("train", "validation", "test")
    listed = {name: [] for name in split_names}
    fov = 2 * math.atan(0.5 * SENSOR_MM / FOCAL_MM)
    for synset in SYNSETS:
        for k in range(objects_per_synset):
            obj = data / synset / f"model{k:03d}"
            (obj / "train").mkdir(parents=True)
            frames = []
            for i, (az, el, ratio) in enumerate(easy_views(n_views, rng)):
                Image.fromarray(disc_rgba(size, rng), "RGBA").save(obj / "train" / f"r_{i}.png")
                frames.append({"file_path": f"./train/r_{i}",
                               "transform_matrix": orbit_c2w(az, el, ratio * MAX_DISTANCE)})
            (obj / "transforms_train.json").write_text(
                json.dumps({"camera_angle_x": fov, "frames": frames}))
            listed[split_names[k % 3]].append(f"./data/data_TRAINED/{synset}/model{k:03d}")
    splits.mkdir(parents=True)
    for name, entries in listed.items():
        (splits / f"{name}.json").write_text(json.dumps(entries))
    return data, splits


def image_folder(root, count: int = 12, size: int = 20, seed: int = 0) -> tuple[Path, Path]:
    """``count`` RGB PNGs in two sub-folders and a labels CSV (file, label, one attribute).
    Returns (image root, labels CSV path)."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    rows = ["file,gender,smiling"]
    for i in range(count):
        rel = Path(f"{i // 6:02d}") / f"{i:05d}.png"
        (root / rel.parent).mkdir(parents=True, exist_ok=True)
        Image.fromarray(disc_rgba(size, rng)[..., :3], "RGB").save(root / rel)
        rows.append(f"{rel.as_posix()},{'female' if i % 2 else 'male'},{i % 3 == 0:d}")
    labels = root / "labels.csv"
    labels.write_text("\n".join(rows) + "\n")
    return root, labels


def onet_tree(root, objects_per_synset: int = 4, seed: int = 0) -> Path:
    """Occupancy Networks' preprocessed ShapeNet: ``<root>/<synset>/<model_id>/points.npz``
    (float16 points in the unit cube, bit-packed occupancies) and ``pointcloud.npz``
    (surface points), here of spheres of random radius; no split lists."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for synset in SYNSETS:
        for i in range(objects_per_synset):
            folder = root / synset / f"model{i:02d}"
            folder.mkdir(parents=True)
            radius = rng.uniform(0.2, 0.4)
            points = rng.uniform(-0.55, 0.55, (512, 3)).astype(np.float16)
            inside = np.linalg.norm(points.astype(np.float32), axis=1) < radius
            np.savez(folder / "points.npz", points=points, occupancies=np.packbits(inside))
            surface = rng.normal(size=(256, 3))
            surface = radius * surface / np.linalg.norm(surface, axis=1, keepdims=True)
            np.savez(folder / "pointcloud.npz", points=surface.astype(np.float32))
    return root
