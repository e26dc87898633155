"""Quaternions and the rotated-object dataset SANE learns from.

Quaternions are ``(w, x, y, z)`` (Hamilton product, unit norm); ``q`` and ``-q`` are the
same rotation. The matrix of ``q`` rotates column vectors: ``x' = R(q) x``.

An *instance* is one object posed by ``x_world = scale * R x_object``. Rendering it from a
camera ``C`` (camera-to-world) with a light fixed in the world is the same picture as
rendering the unposed object from camera ``R^T C`` (position divided by ``scale``) under
the light ``R^T l``: every ray, hit point and normal is mapped by the inverse pose. So
instances are rendered by moving cameras and light, never by rebuilding the SDF.
"""
from __future__ import annotations

import math
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from nfws.data.cameras import intrinsics_from_fov, orbit_c2w
from nfws.data.manifest import read_manifest
from nfws.data.shapenet_render import DISN_FOV_X, sample_easy_views
from nfws.data.sphere_trace import LIGHT_DIR, render_views
from nfws.data.sdf_objects import SDFObject
from nfws.fields.spec import ArchSpec
from nfws.data.views import ShardViews, write_views
from nfws.store import read_parquet, write_parquet

DISTRIBUTIONS = ("discrete", "continuous")
QUAT_COLUMNS = ("qw", "qx", "qy", "qz")
UP_AXIS = (0.0, 1.0, 0.0)   # ShapeNet's mesh frame is Y up


# ----- quaternion algebra ---------------------------------------------------------------
def quat_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product ``a ⊗ b`` of quaternions [..., 4] (apply b, then a)."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([aw * bw - ax * bx - ay * by - az * bz,
                        aw * bx + ax * bw + ay * bz - az * by,
                        aw * by - ax * bz + ay * bw + az * bx,
                        aw * bz + ax * by - ay * bx + az * bw], dim=-1)


def quat_conjugate(q: torch.Tensor) -> torch.Tensor:
    """Inverse of a unit quaternion."""
    return q * q.new_tensor([1.0, -1.0, -1.0, -1.0])


def relative_quat(q_from: torch.Tensor, q_to: torch.Tensor) -> torch.Tensor:
    """The rotation taking pose ``q_from`` to pose ``q_to``: ``q_to ⊗ q_from^{-1}``."""
    return quat_multiply(q_to, quat_conjugate(q_from))


def axis_angle_quat(axis, angle: torch.Tensor) -> torch.Tensor:
    """Quaternions [..., 4] of rotations by ``angle`` [...] (radians) about ``axis`` [3]."""
    axis = torch.as_tensor(axis, dtype=angle.dtype)
    axis = axis / axis.norm()
    half = angle[..., None] / 2
    return torch.cat([half.cos(), half.sin() * axis], dim=-1)


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [..., 3, 3] of quaternions [..., 4] (normalised first)."""
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    rows = [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]
    return torch.stack(rows, dim=-1).reshape(*q.shape[:-1], 3, 3)


def matrix_to_quat(m: torch.Tensor) -> torch.Tensor:
    """Unit quaternions [..., 4] with w >= 0 of rotation matrices [..., 3, 3].

    Uses the largest of the four squared components (Shepperd's method) so no branch
    divides by a small number.
    """
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    four_sq = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22,
                           1 - m00 + m11 - m22, 1 - m00 - m11 + m22], dim=-1)
    best = four_sq.argmax(dim=-1, keepdim=True)
    d21, d02, d10 = m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]
    s21, s02, s10 = m[..., 2, 1] + m[..., 1, 2], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 0] + m[..., 0, 1]
    # each candidate is 4 * q_i * q, computed from the row of the largest component i
    cand = torch.stack([torch.stack([four_sq[..., 0], d21, d02, d10], -1),
                        torch.stack([d21, four_sq[..., 1], s10, s02], -1),
                        torch.stack([d02, s10, four_sq[..., 2], s21], -1),
                        torch.stack([d10, s02, s21, four_sq[..., 3]], -1)], dim=-2)
    q = torch.gather(cand, -2, best[..., None].expand(*best.shape[:-1], 1, 4)).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


def geodesic_angle(q_a: torch.Tensor, q_b: torch.Tensor) -> torch.Tensor:
    """Angle (radians, in [0, π]) of the rotation between unit quaternions; sign-blind."""
    dot = (q_a * q_b).sum(-1).abs().clamp(max=1.0)
    return 2.0 * torch.acos(dot)


def mean_quat(q: np.ndarray) -> np.ndarray:
    """Average rotation of unit quaternions [n, 4] (Markley et al. 2007): the top
    eigenvector of Σ q qᵀ, which ignores the q / -q sign ambiguity."""
    q = np.asarray(q, dtype=np.float64)
    if q.ndim != 2 or q.shape[1] != 4 or len(q) == 0:
        raise ValueError(f"mean_quat: expected quaternions [n, 4], got shape {q.shape}")
    _, vecs = np.linalg.eigh(q.T @ q)
    mean = vecs[:, -1]
    return mean if mean[0] >= 0 else -mean


def random_quats(n: int, rng: np.random.Generator) -> np.ndarray:
    """n rotations uniform on SO(3) (Shoemake's subgroup algorithm), w >= 0."""
    u1, u2, u3 = rng.random((3, n))
    a, b = np.sqrt(1 - u1), np.sqrt(u1)
    q = np.stack([a * np.sin(2 * np.pi * u2), a * np.cos(2 * np.pi * u2),
                  b * np.sin(2 * np.pi * u3), b * np.cos(2 * np.pi * u3)], axis=-1)
    return np.where(q[:, :1] < 0, -q, q)


# ----- poses of the instances -----------------------------------------------------------
def instance_rotations(object_id: str, cfg: dict, seed: int) -> np.ndarray:
    """The K rotations [K, 4] of one object, drawn from (seed, object id) only.

    ``discrete``: K distinct multiples of ``discrete_step_deg`` about the up axis;
    ``continuous``: K uniform random rotations.
    """
    k = int(cfg["n_rotations"])
    rng = np.random.default_rng([seed, zlib.crc32(object_id.encode())])
    if cfg["distribution"] == "continuous":
        return random_quats(k, rng)
    n_steps = 360.0 / float(cfg["discrete_step_deg"])
    if abs(n_steps - round(n_steps)) > 1e-9 or k > round(n_steps):
        raise ValueError(f"sane.data.discrete_step_deg: {cfg['discrete_step_deg']} must divide "
                         f"360 into at least n_rotations ({k}) steps")
    steps = np.sort(rng.choice(int(round(n_steps)), size=k, replace=False))
    angles = torch.tensor(np.radians(steps * float(cfg["discrete_step_deg"])))
    return axis_angle_quat(UP_AXIS, angles).numpy()


def posed_cameras(c2w: torch.Tensor, q: torch.Tensor, scale: float) -> torch.Tensor:
    """Cameras [V, 4, 4] that see the unposed object as ``c2w`` sees the posed one."""
    rot_t = quat_to_matrix(q.double()).T
    out = c2w.double().clone()
    out[:, :3, :3] = rot_t @ out[:, :3, :3]
    out[:, :3, 3] = (out[:, :3, 3] @ rot_t.T) / scale
    return out.float()


def posed_light(q: torch.Tensor) -> tuple[float, float, float]:
    """The world light direction seen from the unposed object's frame: ``R^T l``."""
    light = torch.tensor(LIGHT_DIR, dtype=torch.float64)
    return tuple((quat_to_matrix(q.double()).T @ light).tolist())


def render_instance(obj: SDFObject, q: np.ndarray, scale: float, c2w: torch.Tensor,
                    intrinsics: torch.Tensor, resolution: int) -> np.ndarray:
    """RGBA [V, H, W, 4] of ``obj`` posed by (q, scale) seen by world cameras ``c2w``."""
    qt = torch.as_tensor(q, dtype=torch.float64)
    return render_views(obj, posed_cameras(c2w, qt, scale), intrinsics, resolution, resolution,
                        light_dir=posed_light(qt))


def check_fits(obj: SDFObject, q: np.ndarray, scale: float, bbox: float, where: str) -> None:
    """The posed object's bounding-box corners must stay inside the NeRF box."""
    lo, hi = obj.bounds()
    corners = np.array(np.meshgrid(*zip(lo, hi), indexing="ij")).reshape(3, -1).T
    rot = quat_to_matrix(torch.as_tensor(q, dtype=torch.float64)).numpy()
    reach = float(np.abs(scale * corners @ rot.T).max())
    if reach > bbox:
        raise ValueError(f"{where}: object {obj.object_id} posed by q={np.round(q, 4).tolist()} "
                         f"reaches {reach:.3f} > NeRF bbox {bbox}; lower sane.data.scale")


# ----- the dataset stage ----------------------------------------------------------------
def select_objects(manifest: pd.DataFrame, per_split: dict, where: str) -> pd.DataFrame:
    """The first ``per_split[split]`` objects (by id) of every class in each split."""
    bad = sorted(set(per_split) - {"train", "val", "test"})
    if bad or not per_split:
        raise ValueError(f"sane.data.objects_per_class: keys must be train/val/test, got "
                         f"{sorted(per_split)}")
    parts, classes = [], sorted(manifest["class_name"].unique())
    for split, count in per_split.items():
        if int(count) < 0:
            raise ValueError(f"sane.data.objects_per_class.{split}: must be >= 0, got {count}")
        rows = manifest[manifest["split"] == split].sort_values(["class_index", "object_id"])
        chosen = rows.groupby("class_index", sort=True).head(int(count))
        have = chosen.groupby("class_name").size()
        short = [c for c in classes if have.get(c, 0) < int(count)]
        if short:
            raise ValueError(f"{where}: split {split!r} has fewer than {count} objects for "
                             f"classes {short}")
        parts.append(chosen)
    out = pd.concat(parts, ignore_index=True)
    if out.empty:
        raise ValueError(f"{where}: sane.data.objects_per_class selects no objects")
    return out


def validate_data_cfg(cfg: dict) -> None:
    def bad(key, why):
        raise ValueError(f"sane.data.{key}: {why}, got {cfg.get(key)!r}")

    for key in ("objects_per_class", "n_rotations", "distribution", "resolution", "n_views",
                "scale", "discrete_step_deg"):
        if key not in cfg:
            raise KeyError(f"sane.data.{key}: required but missing")
    if cfg["distribution"] not in DISTRIBUTIONS:
        bad("distribution", f"must be one of {DISTRIBUTIONS}")
    if int(cfg["n_rotations"]) < 2:
        bad("n_rotations", "must be >= 2 (pairs of rotations are SANE's training unit)")
    if int(cfg["resolution"]) < 8:
        bad("resolution", "must be >= 8")
    if int(cfg["n_views"]) < 2:
        bad("n_views", "must be >= 2")
    if not 0 < float(cfg["scale"]) <= 1.0:
        bad("scale", "must lie in (0, 1]")


def build_rotated_dataset(manifest_path, out_views, out_manifest, cfg: dict, seed: int,
                          bbox: float) -> pd.DataFrame:
    """Render every selected object under K poses into a views store and a manifest.

    Reads the ShapeNet manifest (synthetic object JSON sources). Writes ``out_views``
    (views.zarr layout, one row per instance ``<object_id>_r<k>``) and ``out_manifest``
    (object_id, base_object_id, class_name, class_index, split, qw, qx, qy, qz, rotation,
    source). Cameras are DISN easy views drawn per instance. ``cfg`` = ``sane.data``.
    """
    validate_data_cfg(cfg)
    manifest = read_manifest(manifest_path)
    objects = select_objects(manifest, dict(cfg["objects_per_class"]), str(manifest_path))
    res, n_views, scale = int(cfg["resolution"]), int(cfg["n_views"]), float(cfg["scale"])
    intr = intrinsics_from_fov(DISN_FOV_X, res, res).expand(n_views, 4).contiguous()
    rows, images, c2ws = [], [], []
    bar = tqdm(objects.itertuples(index=False), total=len(objects), desc="sane views")
    for row in bar:
        if not str(row.source).endswith(".json"):
            raise ValueError(f"{manifest_path}: object {row.object_id} source {row.source!r} is "
                             "not a synthetic object JSON; rotated instances need an SDF")
        obj = SDFObject.load(row.source)
        for k, q in enumerate(instance_rotations(row.object_id, cfg, seed)):
            check_fits(obj, q, scale, bbox, str(manifest_path))
            instance = f"{row.object_id}_r{k}"
            rng = np.random.default_rng([seed, zlib.crc32(instance.encode())])
            views = sample_easy_views(n_views, rng)
            c2w = orbit_c2w(views["azimuth"], views["elevation"], views["distance"])
            images.append(render_instance(obj, q, scale, c2w, intr, res))
            c2ws.append(c2w.numpy())
            rows.append({"object_id": instance, "base_object_id": row.object_id,
                         "class_name": row.class_name, "class_index": int(row.class_index),
                         "split": row.split, **dict(zip(QUAT_COLUMNS, map(float, q))),
                         "rotation": k, "source": str(row.source)})
    table = pd.DataFrame(rows)
    views = ShardViews(table["object_id"].tolist(), np.stack(images),
                       np.stack(c2ws).astype(np.float32),
                       np.broadcast_to(intr.numpy(), (len(rows), n_views, 4)).copy(),
                       str(out_views))
    write_views(out_views, views, {"dataset": "sane_rotated", "resolution": res,
                                   "n_views": n_views, "distribution": cfg["distribution"],
                                   "scale": scale})
    write_parquet(table, out_manifest)
    return table


def read_rotated_manifest(path) -> pd.DataFrame:
    """The instance manifest written by :func:`build_rotated_dataset`, checked."""
    df = read_parquet(path, columns=["object_id", "base_object_id", "class_name", "class_index",
                                     "split", *QUAT_COLUMNS])
    if df["object_id"].duplicated().any():
        raise ValueError(f"{path}: duplicate instance ids")
    norms = np.linalg.norm(df[list(QUAT_COLUMNS)].to_numpy(), axis=1)
    if not np.allclose(norms, 1.0, atol=1e-4):
        raise ValueError(f"{path}: rotation quaternions must have unit norm")
    return df


def fit_rotated_nerfs(views_store, rot_manifest, spec: ArchSpec, farm_cfg: dict, out_dir,
                      device, seed: int, shard_size: int,
                      checkpoint_dir=None) -> list[str]:
    """Fit one hash-grid NeRF per instance with the farm, ``shard_size`` per shard.

    Writes ``<out_dir>/shard_<i>.zarr`` (NeRF shard format) and returns the shard paths;
    every shard gets ``seed`` (the farm keys its draws on the object ids). Farm
    checkpoints go to ``checkpoint_dir`` (default ``<out_dir>/.checkpoints``, removed when
    empty at the end).
    """
    from nfws.farm.train import train_shard

    if spec.family != "HASH":
        raise ValueError(f"sane.arch: SANE tokenises hash-grid NeRFs, got family {spec.family}")
    if shard_size < 1:
        raise ValueError(f"sane.shard_size: must be >= 1, got {shard_size}")
    ids = read_rotated_manifest(rot_manifest)["object_id"].tolist()
    out_dir = Path(out_dir)
    checkpoints = Path(checkpoint_dir) if checkpoint_dir is not None else out_dir / ".checkpoints"
    paths = []
    for i in range(math.ceil(len(ids) / shard_size)):
        path = out_dir / f"shard_{i:03d}.zarr"
        train_shard(views_store, ids[i * shard_size:(i + 1) * shard_size], spec, farm_cfg, path,
                    device, seed, checkpoints)
        paths.append(str(path))
    if checkpoints.is_dir() and not any(checkpoints.iterdir()):
        checkpoints.rmdir()
    return paths


def jitter_quats(q: torch.Tensor, sigma_deg: float, generator: torch.Generator) -> torch.Tensor:
    """Compose each unit quaternion [B, 4] with a small random rotation whose x, y, z Euler
    angles are N(0, sigma_deg²) degrees (report §4.4's target noise)."""
    if sigma_deg == 0:
        return q
    angles = torch.deg2rad(torch.randn(q.shape[0], 3, generator=generator, dtype=torch.float64)
                           * sigma_deg)
    noise = axis_angle_quat((1.0, 0.0, 0.0), angles[:, 0])
    for axis, a in (((0.0, 1.0, 0.0), angles[:, 1]), ((0.0, 0.0, 1.0), angles[:, 2])):
        noise = quat_multiply(axis_angle_quat(axis, a), noise)
    return quat_multiply(noise.to(q), q)
