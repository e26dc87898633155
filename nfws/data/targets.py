"""Training targets of the mLoRA track: image pixels (2D) and occupancy samples (3D).

``build_image_targets`` / ``build_shape_targets`` write one ``targets.zarr`` per dataset;
``read_target_store`` / ``write_target_store`` are its only reader and writer.
``load_targets`` gives both one interface (``sample``, ``loss``, ``labels``,
``object_ids``) shared by the base-field trainer, the instance fitter and the metrics.
Coordinates: image pixel centres in [-1, 1]² (x right, y down); shapes in the
occupancy-network frame (object inside about [-0.5, 0.5]³). ``read_shape`` reads 3D sources.
Store and 3D sources: docs/formats.md, "Targets store".
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from nfws.config_files import Section
from nfws.data.images import open_images_store
from nfws.data.manifest import read_manifest, split_members
from nfws.store import open_zarr, read_zarr, write_zarr


@dataclass(frozen=True)
class ShapeSampling(Section):
    """The ``lora.datasets.shapenet.targets`` section: uniform and near-surface points, their
    offset ``sigma``, and the ground-truth surface points."""

    SECTION = "lora.datasets.shapenet.targets"
    n_uniform: int
    n_surface: int
    sigma: float
    n_surface_gt: int
#: A targets store's arrays by kind, beside ``object_ids``, ``labels`` and, for stores built
#: with a manifest, ``splits``.
KIND_ARRAYS = {"image": ("images",), "occupancy": ("points", "occupancy", "surface")}
#: What generated samples are compared with, by kind.
GROUND_TRUTH = {"image": "images", "occupancy": "surface"}


# ----------------------------------------------------------------------- mesh geometry
def read_mesh(path) -> tuple[torch.Tensor, torch.Tensor]:
    """Vertices float64 [V, 3] and triangles long [F, 3] of an .obj or .off file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: mesh file missing")
    lines = path.read_text().splitlines()
    verts, faces = [], []
    try:
        if path.suffix.lower() == ".off":
            body = [ln.split("#")[0].split() for ln in lines]
            body = [b for b in body if b]
            if body[0][0].upper() != "OFF":
                raise ValueError("missing OFF header")
            counts = body[0][1:] or body.pop(1)
            nv, nf = int(counts[0]), int(counts[1])
            verts = [[float(x) for x in b[:3]] for b in body[1:1 + nv]]
            polys = [[int(x) for x in b[1:1 + int(b[0])]] for b in body[1 + nv:1 + nv + nf]]
        elif path.suffix.lower() == ".obj":
            polys = []
            for ln in lines:
                tok = ln.split()
                if tok and tok[0] == "v":
                    verts.append([float(x) for x in tok[1:4]])
                elif tok and tok[0] == "f":
                    idx = [int(t.split("/")[0]) for t in tok[1:]]
                    polys.append([i - 1 if i > 0 else len(verts) + i for i in idx])
        else:
            raise ValueError("unsupported mesh format (use .obj or .off)")
        for poly in polys:
            faces += [[poly[0], poly[k], poly[k + 1]] for k in range(1, len(poly) - 1)]
    except (ValueError, IndexError) as err:
        raise ValueError(f"{path}: malformed mesh ({err})") from err
    v = torch.tensor(verts, dtype=torch.float64)
    f = torch.tensor(faces, dtype=torch.long)
    if v.numel() == 0 or f.numel() == 0 or int(f.max()) >= len(v) or int(f.min()) < 0:
        raise ValueError(f"{path}: mesh has no faces or face indices out of range")
    return v, f


def winding_number(points: torch.Tensor, verts: torch.Tensor, faces: torch.Tensor,
                   chunk: int = 4096) -> torch.Tensor:
    """Generalised winding number of a triangle mesh at points [N, 3] (≈1 in, ≈0 out).

    Sum over triangles of the signed solid angle (Van Oosterom–Strackee) divided by 4π.
    """
    tri = verts[faces].to(points.dtype)                       # [F, 3, 3]
    out = []
    for start in range(0, len(points), chunk):
        d = tri.unsqueeze(0) - points[start:start + chunk, None, None, :]   # [n, F, 3, 3]
        a, b, c = d[:, :, 0], d[:, :, 1], d[:, :, 2]
        la, lb, lc = a.norm(dim=-1), b.norm(dim=-1), c.norm(dim=-1)
        num = (a * torch.cross(b, c, dim=-1)).sum(-1)
        den = (la * lb * lc + (a * b).sum(-1) * lc + (b * c).sum(-1) * la
               + (c * a).sum(-1) * lb)
        out.append(2 * torch.atan2(num, den).sum(-1) / (4 * math.pi))
    return torch.cat(out)


def sample_mesh_surface(verts: torch.Tensor, faces: torch.Tensor, n: int,
                        generator: torch.Generator) -> torch.Tensor:
    """n points uniformly distributed over the mesh area."""
    tri = verts[faces]
    area = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1).norm(dim=-1)
    pick = torch.multinomial(area / area.sum(), n, replacement=True, generator=generator)
    u, v = torch.rand(n, generator=generator, dtype=verts.dtype), \
        torch.rand(n, generator=generator, dtype=verts.dtype)
    flip = u + v > 1
    u, v = torch.where(flip, 1 - u, u), torch.where(flip, 1 - v, v)
    t = tri[pick]
    return t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0])


# ------------------------------------------------------------------------ shape readers
def _onet_arrays(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pts_file, pc_file = folder / "points.npz", folder / "pointcloud.npz"
    for f in (pts_file, pc_file):
        if not f.exists():
            raise FileNotFoundError(f"{f}: occupancy-network file missing")
    with np.load(pts_file) as data:
        if "points" not in data or "occupancies" not in data:
            raise ValueError(f"{pts_file}: needs arrays 'points' and 'occupancies'")
        points = data["points"].astype(np.float32)
        occ = data["occupancies"]
    if occ.dtype == np.uint8 and occ.size * 8 >= len(points) > occ.size:
        occ = np.unpackbits(occ)[:len(points)]        # packbits-compressed labels
    if len(occ) != len(points):
        raise ValueError(f"{pts_file}: {len(occ)} occupancies for {len(points)} points")
    with np.load(pc_file) as data:
        if "points" not in data:
            raise ValueError(f"{pc_file}: needs array 'points'")
        surface = data["points"].astype(np.float32)
    return points, occ.astype(bool), surface


def _subsample(arrays, n, generator, where):
    m = len(arrays[0])
    if m < n:
        raise ValueError(f"{where}: has {m} samples, config asks for {n}")
    idx = torch.randperm(m, generator=generator)[:n].numpy()
    return [a[idx] for a in arrays]


def read_shape(source, cfg: dict, generator: torch.Generator):
    """(points [n_uniform+n_surface, 3], occupancy bool [..], surface [n_surface_gt, 3])."""
    cfg = ShapeSampling.pick(cfg)
    n_pts, n_gt = cfg.n_uniform + cfg.n_surface, cfg.n_surface_gt
    path = Path(source)
    if path.suffix.lower() == ".json":
        from nfws.data.occupancy import sample_occupancy, surface_points
        from nfws.data.sdf_objects import SDFObject
        obj = SDFObject.load(path)
        points, occ, _ = sample_occupancy(obj, cfg.n_uniform, cfg.n_surface, cfg.sigma,
                                          generator)
        surface = surface_points(obj, n_gt, generator)
        return (np.asarray(points, np.float32), np.asarray(occ, bool),
                np.asarray(surface, np.float32))
    if path.is_dir():
        points, occ, surface = _onet_arrays(path)
        points, occ = _subsample([points, occ], n_pts, generator, path / "points.npz")
        (surface,) = _subsample([surface], n_gt, generator, path / "pointcloud.npz")
        return points, occ, surface
    if path.suffix.lower() in (".obj", ".off"):
        verts, faces = read_mesh(path)
        lo, hi = verts.min(0).values, verts.max(0).values
        verts = (verts - (lo + hi) / 2) / (hi - lo).max()
        near = sample_mesh_surface(verts, faces, cfg.n_surface, generator)
        near = near + cfg.sigma * torch.randn(near.shape, generator=generator, dtype=near.dtype)
        uniform = (torch.rand(cfg.n_uniform, 3, generator=generator, dtype=verts.dtype) - 0.5) * 1.1
        points = torch.cat([uniform, near])
        occ = winding_number(points, verts, faces).abs() > 0.5  # either face orientation
        surface = sample_mesh_surface(verts, faces, n_gt, generator)
        return points.float().numpy(), occ.numpy(), surface.float().numpy()
    raise ValueError(f"{path}: unknown 3D source (expected .json, .obj, .off or an "
                     "occupancy-network folder)")


# ------------------------------------------------------------------------ targets store
@dataclass(frozen=True)
class TargetStore:
    """A targets store: its kind, its arrays as stored (the kind's ``KIND_ARRAYS`` unless
    read without them, object_ids, labels, splits when recorded) and its other attrs
    (class_names; resolution for images)."""

    kind: str
    arrays: dict[str, np.ndarray]
    attrs: dict

    @property
    def object_ids(self) -> np.ndarray:
        return self.arrays["object_ids"]

    @property
    def labels(self) -> np.ndarray:
        return self.arrays["labels"]

    @property
    def class_names(self) -> list:
        return list(self.attrs.get("class_names", []))

    @property
    def ground_truth(self) -> np.ndarray:
        """Images [N, R, R, 3] uint8 or surface points [N, S, 3] float32."""
        return self.arrays[GROUND_TRUTH[self.kind]]


def write_target_store(path, store: TargetStore) -> None:
    """Write ``store``: its arrays, attrs ``kind`` then its other attrs."""
    write_zarr(path, store.arrays, attrs={"kind": store.kind, **store.attrs})


def read_target_store(path, with_arrays: bool = True) -> TargetStore:
    """Read a targets store (``with_arrays=False``: only ids, labels, splits and attrs); an
    unknown kind or a missing array is an error naming the file."""
    root = open_zarr(path)
    kind = root.attrs.get("kind")
    if kind not in KIND_ARRAYS:
        raise ValueError(f"{path}: attrs['kind'] is {kind!r}, expected 'image' or 'occupancy'")
    names = [*(KIND_ARRAYS[kind] if with_arrays else ()), "object_ids", "labels"]
    arrays, attrs = read_zarr(path, names + (["splits"] if "splits" in root else []))
    del attrs["kind"]
    return TargetStore(kind, arrays, attrs)


def split_ground_truth(path, manifest_path, split: str) -> tuple[str, np.ndarray, np.ndarray]:
    """(kind, ground truth, labels) of the objects of a targets store that the manifest puts
    in ``split`` (at least two)."""
    store = read_target_store(path)
    keep = split_members(manifest_path, store.object_ids, split, path)
    return store.kind, store.ground_truth[keep], store.labels[keep]


# ----------------------------------------------------------------------- store builders
def _manifest_rows(manifest_path, n_instances):
    df = read_manifest(manifest_path)
    if n_instances is not None:
        df = df.iloc[:int(n_instances)]
    if df.empty:
        raise ValueError(f"{manifest_path}: no objects to build targets from")
    return df


def build_shape_targets(manifest_path, out_path, cfg: dict, seed: int) -> None:
    """Sample occupancy and ground-truth surface points for every manifest object.

    cfg: n_uniform, n_surface, sigma, n_surface_gt, optional n_instances (first rows).
    Writes points float32 [N, M, 3], occupancy uint8 [N, M], surface float32 [N, S, 3],
    object_ids, labels (class_index), splits; attrs kind='occupancy', class_names.
    """
    df = _manifest_rows(manifest_path, cfg.get("n_instances"))
    points, occ, surface = [], [], []
    for row in tqdm(df.itertuples(index=False), total=len(df), desc="occupancy targets"):
        gen = torch.Generator().manual_seed(seed * 1_000_003 + len(points))
        p, o, s = read_shape(row.source, cfg, gen)
        points.append(p), occ.append(o), surface.append(s)
    classes = dict(zip(df.class_index, df.class_name))
    write_target_store(out_path, TargetStore("occupancy", {
        "points": np.stack(points), "occupancy": np.stack(occ).astype(np.uint8),
        "surface": np.stack(surface), "object_ids": df.object_id.to_numpy(),
        "labels": df.class_index.to_numpy(np.int64), "splits": df.split.to_numpy().astype(str)},
        {"class_names": [str(classes.get(k, k)) for k in range(max(classes) + 1)]}))


def build_image_targets(images_store, out_path, resolution: int,
                        n_instances: int | None = None, manifest_path=None) -> None:
    """Area-resize the first ``n_instances`` images of an images store to ``resolution``.

    Writes images uint8 [N, R, R, 3], object_ids, labels, and with ``manifest_path`` each
    image's split (``splits``); attrs kind='image', resolution.
    """
    store = open_images_store(images_store)
    arrays = {k: store[k][...] for k in ("images", "object_ids", "labels")}
    images = arrays["images"][:n_instances] if n_instances else arrays["images"]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{images_store}: images must be [N, H, W, 3], got {images.shape}")
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    if x.shape[-1] != resolution or x.shape[-2] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="area")
    out = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    n = len(out)
    extra = {}
    if manifest_path is not None:
        extra["splits"] = object_splits(manifest_path, arrays["object_ids"][:n])
    write_target_store(out_path, TargetStore("image", {
        "images": out, "object_ids": arrays["object_ids"][:n],
        "labels": arrays["labels"][:n].astype(np.int64), **extra},
        {"resolution": int(resolution), "class_names": store.attrs["class_names"]}))


def object_splits(manifest_path, object_ids) -> np.ndarray:
    """The manifest split (str) of each of ``object_ids``; an unlisted id is an error."""
    df = read_manifest(manifest_path, ["object_id", "split"])
    lookup = dict(zip(df.object_id.astype(str), df.split.astype(str)))
    missing = [str(o) for o in object_ids if str(o) not in lookup]
    if missing:
        raise ValueError(f"{manifest_path}: no split for {len(missing)} objects, e.g. {missing[:3]}")
    return np.array([lookup[str(o)] for o in object_ids], dtype=str)


def training_indices(targets, where) -> np.ndarray:
    """Instances that training may see: the train split when the targets store records
    splits (held-out objects are the generation reference and must stay unseen), else all."""
    if targets.splits is None:
        return np.arange(len(targets))
    idx = np.flatnonzero(targets.splits == "train")
    if len(idx) == 0:
        raise ValueError(f"{where}: no instance of the train split to train on")
    return idx


# ------------------------------------------------------------------------------ readers
def _splits(arrays) -> np.ndarray | None:
    """Each instance's split, or None for stores built without a manifest."""
    return np.array([str(s) for s in arrays["splits"]], dtype=object) if "splits" in arrays else None


def pixel_grid(resolution: int) -> torch.Tensor:
    """Pixel-centre coordinates [R·R, 2] in [-1, 1]², row-major (x, y)."""
    c = (torch.arange(resolution, dtype=torch.float32) + 0.5) / resolution * 2 - 1
    y, x = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([x.reshape(-1), y.reshape(-1)], -1)


class ImageTargets:
    """RGB images as fields: coords [-1, 1]² → colour in [0, 1]; MSE on sigmoid-free output."""
    kind, coord_dim, out_dim = "image", 2, 3

    def __init__(self, arrays: dict, attrs: dict):
        self.images = torch.from_numpy(arrays["images"]).float().div(255)  # [N, R, R, 3]
        self.resolution = self.images.shape[1]
        self.coords = pixel_grid(self.resolution)
        self.values = self.images.reshape(len(self.images), -1, 3)
        self.object_ids = np.array([str(o) for o in arrays["object_ids"]], dtype=object)
        self.labels = arrays["labels"].astype(np.int64)
        self.class_names = list(attrs.get("class_names", []))
        self.splits = _splits(arrays)

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, index: int, n: int, generator: torch.Generator):
        idx = torch.randint(0, len(self.coords), (n,), generator=generator)
        return self.coords[idx], self.values[index, idx]

    @staticmethod
    def loss(pred: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Per-instance mean squared error [B]."""
        return (pred - values).pow(2).mean(dim=(1, 2))


class OccupancyTargets:
    """Occupancy samples: points → logit; binary cross-entropy."""
    kind, coord_dim, out_dim = "occupancy", 3, 1

    def __init__(self, arrays: dict, attrs: dict):
        self.points = torch.from_numpy(arrays["points"]).float()
        self.values = torch.from_numpy(arrays["occupancy"]).float().unsqueeze(-1)
        self.surface = torch.from_numpy(arrays["surface"]).float()
        self.object_ids = np.array([str(o) for o in arrays["object_ids"]], dtype=object)
        self.labels = arrays["labels"].astype(np.int64)
        self.class_names = list(attrs.get("class_names", []))
        self.splits = _splits(arrays)

    def __len__(self) -> int:
        return len(self.points)

    def sample(self, index: int, n: int, generator: torch.Generator):
        idx = torch.randint(0, self.points.shape[1], (n,), generator=generator)
        return self.points[index, idx], self.values[index, idx]

    @staticmethod
    def loss(pred: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Per-instance mean binary cross-entropy on logits [B]."""
        return F.binary_cross_entropy_with_logits(pred, values, reduction="none").mean(dim=(1, 2))


def load_targets(path) -> ImageTargets | OccupancyTargets:
    store = read_target_store(path)
    targets = ImageTargets if store.kind == "image" else OccupancyTargets
    return targets(store.arrays, store.attrs)


def sample_batch(targets, indices, n: int, generators: list[torch.Generator]):
    """Points and values [B, n, ...] with instance i drawn from its own generator."""
    pairs = [targets.sample(int(i), n, g) for i, g in zip(indices, generators)]
    return torch.stack([p for p, _ in pairs]), torch.stack([v for _, v in pairs])
