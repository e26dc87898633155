"""Analytic SDF objects: unions of coloured, exactly-signed primitive parts.

An object is a union (min) of coloured parts. Each part is a primitive (box, cylinder,
sphere, cone, capsule) placed by rotation, translation and *uniform* scale only, so every
part's signed distance stays exact: ``sdf(x) = s * sdf_local(R^T (x - t) / s)``. Shape
variety comes from the primitives' own dimensions, never from anisotropic scaling.

Frame: ShapeNet's mesh frame, Y up; :func:`normalised` centres an object on its bounding
box and scales its largest extent to ``TARGET_EXTENT`` (it fits in [-0.5, 0.5]^3, well
inside the NeRF box [-0.7, 0.7]^3).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nfws.data.manifest import CLASS_INDEX
from nfws.store import write_json

FORMAT = "nfws.synthetic3d/1"
TARGET_EXTENT = 1.0

# primitive name -> ordered parameter names (all lengths in the part's local frame)
PRIMITIVES = {
    "sphere": ("radius",),
    "box": ("half_x", "half_y", "half_z"),
    "cylinder": ("radius", "half_height"),
    "capsule": ("radius", "half_length"),
    "cone": ("radius_bottom", "radius_top", "half_height"),
}


# ----- exact primitive SDFs (local frame, axis of revolution = y) -------------------------
def _sdf_sphere(p, prm):
    return p.norm(dim=-1) - prm[..., 0]


def _sdf_box(p, prm):
    q = p.abs() - prm
    outside = q.clamp(min=0).norm(dim=-1)
    inside = q.max(dim=-1).values.clamp(max=0)
    return outside + inside


def _sdf_cylinder(p, prm):
    radial = p[..., [0, 2]].norm(dim=-1)
    d = torch.stack([radial - prm[..., 0], p[..., 1].abs() - prm[..., 1]], dim=-1)
    return d.max(dim=-1).values.clamp(max=0) + d.clamp(min=0).norm(dim=-1)


def _sdf_capsule(p, prm):
    h = prm[..., 1]
    y = torch.minimum(torch.maximum(p[..., 1], -h), h)
    axis_point = torch.stack([torch.zeros_like(y), y, torch.zeros_like(y)], dim=-1)
    return (p - axis_point).norm(dim=-1) - prm[..., 0]


def _sdf_cone(p, prm):
    """Capped cone (frustum): exact distance in the (radial, y) half-plane."""
    r1, r2, h = prm[..., 0], prm[..., 1], prm[..., 2]
    qx = p[..., [0, 2]].norm(dim=-1)
    qy = p[..., 1]
    # distance vector to the nearer cap disc
    cap_r = torch.where(qy < 0, r1, r2)
    ca_x = qx - torch.minimum(qx, cap_r)
    ca_y = qy.abs() - h
    # distance vector to the slanted side segment from (r1, -h) to (r2, h)
    k2x, k2y = r2 - r1, 2 * h
    along = ((r2 - qx) * k2x + (h - qy) * k2y) / (k2x**2 + k2y**2)
    along = along.clamp(0.0, 1.0)
    cb_x = qx - r2 + k2x * along
    cb_y = qy - h + k2y * along
    inside = (cb_x < 0) & (ca_y < 0)
    dist = torch.minimum(ca_x**2 + ca_y**2, cb_x**2 + cb_y**2).sqrt()
    return torch.where(inside, -dist, dist)


_SDF = {"sphere": _sdf_sphere, "box": _sdf_box, "cylinder": _sdf_cylinder,
        "capsule": _sdf_capsule, "cone": _sdf_cone}


def _local_half_extent(primitive: str, prm: np.ndarray) -> np.ndarray:
    """Half extents of a primitive's local axis-aligned bounding box."""
    if primitive == "sphere":
        return np.full(3, prm[0])
    if primitive == "box":
        return prm.copy()
    if primitive == "cylinder":
        return np.array([prm[0], prm[1], prm[0]])
    if primitive == "capsule":
        return np.array([prm[0], prm[1] + prm[0], prm[0]])
    r = max(prm[0], prm[1])
    return np.array([r, prm[2], r])


def rotation_matrix(rotation_deg) -> np.ndarray:
    """R = Rz @ Ry @ Rx from angles in degrees (x applied first)."""
    ax, ay, az = np.radians(np.asarray(rotation_deg, dtype=np.float64))
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


@dataclass
class Part:
    """One coloured primitive placed by x_world = scale * R x_local + translation."""

    name: str
    primitive: str
    params: tuple[float, ...]
    translation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rotation_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: float = 1.0
    colour: tuple[float, float, float] = (0.5, 0.5, 0.5)

    def validate(self, where: str) -> None:
        if self.primitive not in PRIMITIVES:
            raise ValueError(f"{where}: part {self.name!r} has unknown primitive "
                             f"{self.primitive!r}; known: {sorted(PRIMITIVES)}")
        names = PRIMITIVES[self.primitive]
        if len(self.params) != len(names):
            raise ValueError(f"{where}: part {self.name!r} ({self.primitive}) needs params "
                             f"{names}, got {len(self.params)} values")
        prm = np.asarray(self.params, dtype=np.float64)
        if not np.all(np.isfinite(prm)) or np.any(prm < 0):
            raise ValueError(f"{where}: part {self.name!r} params must be finite and >= 0")
        if self.primitive == "cone":
            if prm[2] <= 0 or max(prm[0], prm[1]) <= 0:
                raise ValueError(f"{where}: part {self.name!r} cone is degenerate")
        elif np.any(prm <= 0):
            raise ValueError(f"{where}: part {self.name!r} params must be > 0")
        if not (self.scale > 0 and math.isfinite(self.scale)):
            raise ValueError(f"{where}: part {self.name!r} scale must be > 0")
        for key in ("translation", "rotation_deg", "colour"):
            value = np.asarray(getattr(self, key), dtype=np.float64)
            if value.shape != (3,) or not np.all(np.isfinite(value)):
                raise ValueError(f"{where}: part {self.name!r} {key} must be 3 finite numbers")
        if np.any(np.asarray(self.colour) < 0) or np.any(np.asarray(self.colour) > 1):
            raise ValueError(f"{where}: part {self.name!r} colour must lie in [0, 1]")

    def world_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned bounds of the placed part (exact for axis-aligned parts)."""
        half = _local_half_extent(self.primitive, np.asarray(self.params, dtype=np.float64))
        corners = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1], indexing="ij")).reshape(3, -1).T
        world = self.scale * (corners * half) @ rotation_matrix(self.rotation_deg).T
        world = world + np.asarray(self.translation)
        return world.min(axis=0), world.max(axis=0)


class SDFObject:
    """A union of parts with vectorised ``sdf`` and ``colour`` on torch points [..., 3]."""

    def __init__(self, object_id: str, class_name: str, parts: list[Part], where: str = "object"):
        if not parts:
            raise ValueError(f"{where}: object {object_id!r} has no parts")
        for part in parts:
            part.validate(where)
        self.object_id = object_id
        self.class_name = class_name
        self.parts = list(parts)
        self._groups = self._group_parts()

    def _group_parts(self):
        """Stack parts of one primitive type so each type is one batched evaluation."""
        groups = []
        for primitive in PRIMITIVES:
            idx = [i for i, p in enumerate(self.parts) if p.primitive == primitive]
            if not idx:
                continue
            sel = [self.parts[i] for i in idx]
            groups.append({
                "primitive": primitive,
                "index": torch.tensor(idx),
                "rot_over_scale": torch.tensor(
                    np.stack([rotation_matrix(p.rotation_deg) / p.scale for p in sel]),
                    dtype=torch.float32),
                "trans": torch.tensor([p.translation for p in sel], dtype=torch.float32),
                "scale": torch.tensor([p.scale for p in sel], dtype=torch.float32),
                "params": torch.tensor([p.params for p in sel], dtype=torch.float32),
            })
        return groups

    def _group_sdf(self, points: torch.Tensor):
        """Yield (part indices, signed distances [k, N]) per primitive group."""
        for g in self._groups:
            # row vectors: x_local = R^T (x - t) / s  ==  (x - t) @ (R / s)
            local = (points.unsqueeze(0) - g["trans"].to(points)[:, None]) @ g["rot_over_scale"].to(points)
            d = _SDF[g["primitive"]](local, g["params"].to(points)[:, None, :])
            yield g["index"], d * g["scale"].to(points)[:, None]

    def part_sdf(self, points: torch.Tensor) -> torch.Tensor:
        """Signed distance of every part: [P, N] for points [N, 3] (object frame)."""
        out = points.new_empty(len(self.parts), points.shape[0])
        for index, d in self._group_sdf(points):
            out[index.to(points.device)] = d
        return out

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        """Signed distance of the union (min over parts); points [..., 3] -> [...]."""
        flat = points.reshape(-1, 3)
        best = None
        for _, d in self._group_sdf(flat):
            d = d.min(dim=0).values
            best = d if best is None else torch.minimum(best, d)
        return best.reshape(points.shape[:-1])

    def colour(self, points: torch.Tensor) -> torch.Tensor:
        """Albedo in [0, 1] of the part nearest each point; points [..., 3] -> [..., 3]."""
        flat = points.reshape(-1, 3)
        nearest = self.part_sdf(flat).argmin(dim=0)
        palette = torch.tensor([p.colour for p in self.parts], dtype=points.dtype,
                               device=points.device)
        return palette[nearest].reshape(*points.shape[:-1], 3)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lows, highs = zip(*(p.world_bounds() for p in self.parts))
        return np.min(lows, axis=0), np.max(highs, axis=0)

    def bounding_radius(self) -> float:
        """Radius about the origin of a sphere containing every part's bounds."""
        lo, hi = self.bounds()
        return float(np.linalg.norm(np.maximum(np.abs(lo), np.abs(hi))))

    # ----- (de)serialisation ----------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "object_id": self.object_id,
            "class_name": self.class_name,
            "parts": [{
                "name": p.name, "primitive": p.primitive,
                "params": dict(zip(PRIMITIVES[p.primitive], map(float, p.params))),
                "translation": [float(v) for v in p.translation],
                "rotation_deg": [float(v) for v in p.rotation_deg],
                "scale": float(p.scale),
                "colour": [float(v) for v in p.colour],
            } for p in self.parts],
        }

    @classmethod
    def from_dict(cls, data: dict, where: str = "object") -> "SDFObject":
        if data.get("format") != FORMAT:
            raise ValueError(f"{where}: format must be {FORMAT!r}, got {data.get('format')!r}")
        for key in ("object_id", "class_name", "parts"):
            if key not in data:
                raise ValueError(f"{where}: missing key {key!r}")
        if data["class_name"] not in CLASS_INDEX:
            raise ValueError(f"{where}: unknown class {data['class_name']!r}; "
                             f"known: {sorted(CLASS_INDEX)}")
        parts = []
        for i, entry in enumerate(data["parts"]):
            try:
                primitive = entry["primitive"]
                if primitive not in PRIMITIVES:
                    raise ValueError(f"unknown primitive {primitive!r}; known: {sorted(PRIMITIVES)}")
                names = PRIMITIVES[primitive]
                extra = sorted(set(entry["params"]) - set(names))
                if extra:
                    raise ValueError(f"unknown params {extra} for {primitive}")
                parts.append(Part(
                    name=str(entry["name"]), primitive=primitive,
                    params=tuple(float(entry["params"][n]) for n in names),
                    translation=tuple(entry["translation"]),
                    rotation_deg=tuple(entry["rotation_deg"]),
                    scale=float(entry["scale"]), colour=tuple(entry["colour"]),
                ))
            except (KeyError, TypeError, ValueError) as err:
                raise ValueError(f"{where}: part {i} is malformed ({err!r})") from err
        return cls(str(data["object_id"]), str(data["class_name"]), parts, where=where)

    def save(self, path) -> None:
        write_json(self.to_dict(), path)

    @classmethod
    def load(cls, path) -> "SDFObject":
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: synthetic object JSON missing")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err
        return cls.from_dict(data, where=str(path))


def normalised(parts: list[Part], extent: float = TARGET_EXTENT) -> list[Part]:
    """Centre the union on its bounding box and scale its largest extent to ``extent``.

    Applied as one uniform similarity to every part, so each part's SDF stays exact.
    """
    lo, hi = SDFObject("tmp", "tmp", parts).bounds()
    centre, k = (lo + hi) / 2, extent / float(np.max(hi - lo))
    return [Part(p.name, p.primitive, p.params,
                 tuple(float(v) for v in (np.asarray(p.translation) - centre) * k),
                 p.rotation_deg, p.scale * k, p.colour) for p in parts]
