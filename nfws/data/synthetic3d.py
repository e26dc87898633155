"""Seeded synthetic stand-ins for the 13 ShapenetRender classes, as analytic SDF objects.

Each class is a composition of parts (:mod:`nfws.data.sdf_objects`) whose dimensions,
placement and colours are drawn from a seeded generator; every object is centred and
scaled to ``TARGET_EXTENT``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from nfws.data.manifest import (
    CLASS_INDEX,
    positive_int,
    register_source,
    shapenet_classes,
)
from nfws.data.sdf_objects import Part, SDFObject, normalised

# ----- class-like compositions ----------------------------------------------------------
def _jitter(rng, colour, amount=0.08):
    return tuple(float(v) for v in np.clip(np.asarray(colour) + rng.uniform(-amount, amount, 3),
                                           0.02, 0.98))


def _pick(rng, palette):
    return _jitter(rng, palette[rng.integers(len(palette))])


VIVID = [(0.8, 0.1, 0.1), (0.1, 0.3, 0.8), (0.9, 0.7, 0.1), (0.1, 0.6, 0.2), (0.9, 0.9, 0.9),
         (0.2, 0.2, 0.25), (0.6, 0.2, 0.7), (0.95, 0.45, 0.1)]
WOOD = [(0.55, 0.35, 0.18), (0.7, 0.5, 0.3), (0.4, 0.25, 0.12), (0.85, 0.75, 0.55)]
FABRIC = [(0.6, 0.2, 0.2), (0.2, 0.35, 0.6), (0.5, 0.5, 0.45), (0.3, 0.5, 0.3), (0.75, 0.7, 0.6)]
METAL = [(0.15, 0.15, 0.17), (0.6, 0.6, 0.62), (0.35, 0.35, 0.4)]


def _airplane(rng):
    length, radius = rng.uniform(0.9, 1.2), rng.uniform(0.06, 0.1)
    span, chord = rng.uniform(0.8, 1.2), rng.uniform(0.12, 0.22)
    body, accent = _pick(rng, [(0.9, 0.9, 0.92), (0.7, 0.72, 0.75)]), _pick(rng, VIVID)
    wing_x = rng.uniform(-0.1, 0.1)
    parts = [
        Part("fuselage", "capsule", (radius, length / 2), rotation_deg=(0, 0, 90), colour=body),
        Part("wings", "box", (chord / 2, 0.015, span / 2), (wing_x, -0.2 * radius, 0), colour=accent),
        Part("stabiliser", "box", (chord / 4, 0.01, span / 5), (-length / 2 + 0.02, 0, 0), colour=accent),
        Part("fin", "box", (chord / 3, rng.uniform(0.1, 0.18) / 2, 0.01),
             (-length / 2 + 0.03, radius + 0.05, 0), rotation_deg=(0, 0, 15), colour=accent),
    ]
    if rng.random() < 0.7:
        for side in (-1, 1):
            parts.append(Part(f"engine{side}", "cylinder", (radius * 0.55, chord * 0.4),
                              (wing_x + 0.02, -radius - 0.03, side * span * 0.25),
                              rotation_deg=(0, 0, 90), colour=_jitter(rng, METAL[1])))
    return parts


def _bench(rng):
    length, depth, height = rng.uniform(0.9, 1.3), rng.uniform(0.25, 0.4), rng.uniform(0.35, 0.5)
    wood, legc = _pick(rng, WOOD), _pick(rng, METAL)
    parts = [Part("seat", "box", (length / 2, 0.025, depth / 2), (0, height, 0), colour=wood)]
    for sx in (-1, 1):
        parts.append(Part(f"side{sx}", "box", (0.025, height / 2, depth / 2 * 0.9),
                          (sx * (length / 2 - 0.06), height / 2, 0), colour=legc))
    if rng.random() < 0.6:
        back_h = rng.uniform(0.2, 0.35)
        parts.append(Part("back", "box", (length / 2, back_h / 2, 0.02),
                          (0, height + back_h / 2 + 0.03, -depth / 2), rotation_deg=(-10, 0, 0),
                          colour=wood))
    return parts


def _cabinet(rng):
    w, h, d = rng.uniform(0.5, 0.9), rng.uniform(0.6, 1.1), rng.uniform(0.35, 0.55)
    body, door, knob = _pick(rng, WOOD), _pick(rng, WOOD + FABRIC), _pick(rng, METAL)
    parts = [Part("body", "box", (w / 2, h / 2, d / 2), (0, h / 2, 0), colour=body)]
    n_doors = int(rng.integers(1, 3))
    door_w = w / n_doors
    for i in range(n_doors):
        x = -w / 2 + door_w * (i + 0.5)
        parts.append(Part(f"door{i}", "box", (door_w / 2 * 0.9, h / 2 * 0.9, 0.01),
                          (x, h / 2, d / 2 + 0.01), colour=door))
        parts.append(Part(f"knob{i}", "sphere", (0.025,),
                          (x + door_w * 0.3 * (1 if i else -1) * (n_doors > 1), h / 2, d / 2 + 0.04),
                          colour=knob))
    return parts


def _car(rng):
    length, width, height = rng.uniform(1.0, 1.3), rng.uniform(0.45, 0.55), rng.uniform(0.18, 0.26)
    wheel_r = rng.uniform(0.09, 0.13)
    paint, glass = _pick(rng, VIVID), _jitter(rng, (0.2, 0.25, 0.3))
    cabin_len = length * rng.uniform(0.4, 0.6)
    parts = [
        Part("body", "box", (length / 2, height / 2, width / 2), (0, wheel_r + height / 2, 0), colour=paint),
        Part("cabin", "box", (cabin_len / 2, height * 0.45, width / 2 * 0.85),
             (rng.uniform(-0.1, 0.05), wheel_r + height + height * 0.4, 0), colour=glass),
    ]
    for i, (sx, sz) in enumerate([(-1, -1), (-1, 1), (1, -1), (1, 1)]):
        parts.append(Part(f"wheel{i}", "cylinder", (wheel_r, 0.04),
                          (sx * length * 0.32, wheel_r, sz * width / 2), rotation_deg=(90, 0, 0),
                          colour=_jitter(rng, METAL[0])))
    return parts


def _chair(rng):
    w, d, seat_h = rng.uniform(0.4, 0.55), rng.uniform(0.4, 0.55), rng.uniform(0.4, 0.5)
    back_h = rng.uniform(0.4, 0.6)
    seat, frame = _pick(rng, FABRIC + WOOD), _pick(rng, WOOD + METAL)
    parts = [
        Part("seat", "box", (w / 2, 0.03, d / 2), (0, seat_h, 0), colour=seat),
        Part("back", "box", (w / 2, back_h / 2, 0.025), (0, seat_h + back_h / 2, -d / 2 + 0.025),
             rotation_deg=(-rng.uniform(0, 12), 0, 0), colour=seat),
    ]
    leg_r = rng.uniform(0.015, 0.03)
    for i, (sx, sz) in enumerate([(-1, -1), (-1, 1), (1, -1), (1, 1)]):
        parts.append(Part(f"leg{i}", "cylinder", (leg_r, seat_h / 2),
                          (sx * (w / 2 - 0.04), seat_h / 2, sz * (d / 2 - 0.04)), colour=frame))
    if rng.random() < 0.4:
        for sx in (-1, 1):
            parts.append(Part(f"arm{sx}", "box", (0.025, 0.02, d / 2 * 0.8),
                              (sx * w / 2, seat_h + 0.2, 0), colour=frame))
    return parts


def _display(rng):
    w, h = rng.uniform(0.7, 1.0), rng.uniform(0.4, 0.6)
    frame, screen = _pick(rng, METAL), _jitter(rng, (0.05, 0.08, 0.15), 0.04)
    neck = rng.uniform(0.1, 0.25)
    return [
        Part("base", "box", (rng.uniform(0.12, 0.2), 0.015, 0.12), (0, 0.015, 0), colour=frame),
        Part("neck", "cylinder", (0.025, neck / 2), (0, neck / 2, -0.02), colour=frame),
        Part("frame", "box", (w / 2, h / 2, 0.025), (0, neck + h / 2, 0), colour=frame),
        Part("screen", "box", (w / 2 * 0.93, h / 2 * 0.9, 0.005), (0, neck + h / 2, 0.026),
             colour=screen),
    ]


def _lamp(rng):
    height = rng.uniform(0.8, 1.2)
    metal, shade = _pick(rng, METAL + WOOD), _pick(rng, FABRIC + VIVID)
    shade_h = rng.uniform(0.2, 0.3)
    r_bottom, r_top = rng.uniform(0.18, 0.28), rng.uniform(0.06, 0.14)
    return [
        Part("base", "cylinder", (rng.uniform(0.12, 0.2), 0.02), (0, 0.02, 0), colour=metal),
        Part("pole", "cylinder", (0.015, height / 2), (0, height / 2, 0), colour=metal),
        Part("shade", "cone", (r_bottom, r_top, shade_h / 2), (0, height + shade_h / 2 - 0.05, 0),
             colour=shade),
        Part("bulb", "sphere", (0.05,), (0, height - 0.05, 0), colour=(0.98, 0.95, 0.7)),
    ]


def _speaker(rng):
    w, h, d = rng.uniform(0.3, 0.45), rng.uniform(0.6, 1.0), rng.uniform(0.3, 0.4)
    body, cone = _pick(rng, WOOD + METAL), _jitter(rng, (0.1, 0.1, 0.1), 0.05)
    woofer = min(w * 0.4, rng.uniform(0.1, 0.15))
    return [
        Part("cabinet", "box", (w / 2, h / 2, d / 2), (0, h / 2, 0), colour=body),
        Part("woofer", "cylinder", (woofer, 0.015), (0, h * 0.3, d / 2), rotation_deg=(90, 0, 0),
             colour=cone),
        Part("tweeter", "cylinder", (woofer * 0.4, 0.015), (0, h * 0.75, d / 2),
             rotation_deg=(90, 0, 0), colour=cone),
    ]


def _rifle(rng):
    length = rng.uniform(1.1, 1.4)
    body, stock = _pick(rng, METAL), _pick(rng, WOOD + METAL)
    barrel = length * rng.uniform(0.35, 0.45)
    parts = [
        Part("receiver", "box", (length * 0.17, 0.05, 0.03), (0, 0, 0), colour=body),
        Part("barrel", "cylinder", (0.015, barrel / 2), (length * 0.17 + barrel / 2, 0.02, 0),
             rotation_deg=(0, 0, 90), colour=body),
        Part("stock", "box", (length * 0.14, 0.06, 0.025), (-length * 0.3, -0.03, 0),
             rotation_deg=(0, 0, rng.uniform(5, 12)), colour=stock),
        Part("magazine", "box", (0.03, rng.uniform(0.06, 0.1), 0.02), (0.05, -0.1, 0),
             rotation_deg=(0, 0, -10), colour=body),
        Part("grip", "box", (0.025, 0.06, 0.02), (-0.12, -0.09, 0), rotation_deg=(0, 0, -20),
             colour=stock),
    ]
    if rng.random() < 0.5:
        parts.append(Part("scope", "cylinder", (0.025, length * 0.1), (0, 0.09, 0),
                          rotation_deg=(0, 0, 90), colour=_jitter(rng, METAL[0])))
    return parts


def _sofa(rng):
    length, depth, seat_h = rng.uniform(1.0, 1.4), rng.uniform(0.45, 0.6), rng.uniform(0.2, 0.3)
    fabric, cushion = _pick(rng, FABRIC), _pick(rng, FABRIC)
    back_h, arm_w = rng.uniform(0.25, 0.4), rng.uniform(0.06, 0.12)
    parts = [
        Part("base", "box", (length / 2, seat_h / 2, depth / 2), (0, seat_h / 2, 0), colour=fabric),
        Part("back", "box", (length / 2, back_h / 2, 0.06), (0, seat_h + back_h / 2, -depth / 2 + 0.06),
             colour=fabric),
    ]
    for sx in (-1, 1):
        parts.append(Part(f"arm{sx}", "box", (arm_w / 2, seat_h * 0.6, depth / 2),
                          (sx * (length / 2 - arm_w / 2), seat_h * 1.1, 0), colour=fabric))
    n_cushions = int(rng.integers(2, 4))
    inner = length - 2 * arm_w
    for i in range(n_cushions):
        parts.append(Part(f"cushion{i}", "box", (inner / n_cushions / 2 * 0.95, 0.04, depth / 2 * 0.8),
                          (-inner / 2 + inner / n_cushions * (i + 0.5), seat_h + 0.04, 0.03),
                          colour=cushion))
    return parts


def _table(rng):
    w, d, h = rng.uniform(0.8, 1.2), rng.uniform(0.5, 0.9), rng.uniform(0.45, 0.65)
    top, legc = _pick(rng, WOOD), _pick(rng, WOOD + METAL)
    if rng.random() < 0.35:
        r = min(w, d) / 2
        return [
            Part("top", "cylinder", (r, 0.025), (0, h, 0), colour=top),
            Part("pedestal", "cylinder", (0.04, h / 2), (0, h / 2, 0), colour=legc),
            Part("foot", "cylinder", (r * 0.5, 0.02), (0, 0.02, 0), colour=legc),
        ]
    parts = [Part("top", "box", (w / 2, 0.025, d / 2), (0, h, 0), colour=top)]
    leg = rng.uniform(0.02, 0.04)
    for i, (sx, sz) in enumerate([(-1, -1), (-1, 1), (1, -1), (1, 1)]):
        parts.append(Part(f"leg{i}", "box", (leg, h / 2, leg),
                          (sx * (w / 2 - 0.06), h / 2, sz * (d / 2 - 0.06)), colour=legc))
    return parts


def _phone(rng):
    w, h, t = rng.uniform(0.4, 0.55), rng.uniform(0.8, 1.0), rng.uniform(0.04, 0.07)
    case, screen = _pick(rng, METAL + VIVID), _jitter(rng, (0.05, 0.05, 0.1), 0.04)
    return [
        Part("body", "box", (w / 2, h / 2, t / 2), (0, 0, 0), colour=case),
        Part("screen", "box", (w / 2 * 0.9, h / 2 * 0.85, 0.004), (0, 0, t / 2 + 0.002), colour=screen),
        Part("camera", "cylinder", (0.03, 0.008), (w * 0.25, h * 0.38, -t / 2 - 0.006),
             rotation_deg=(90, 0, 0), colour=_jitter(rng, METAL[0])),
        Part("button", "sphere", (0.025,), (0, -h * 0.44, t / 2), colour=_jitter(rng, METAL[1])),
    ]


def _watercraft(rng):
    length, beam = rng.uniform(1.0, 1.3), rng.uniform(0.2, 0.32)
    hull, deck = _pick(rng, VIVID), _pick(rng, [(0.9, 0.9, 0.9), (0.7, 0.55, 0.35)])
    hull_h = rng.uniform(0.1, 0.16)
    parts = [
        Part("hull", "box", (length * 0.35, hull_h / 2, beam / 2), (-length * 0.1, hull_h / 2, 0),
             colour=hull),
        Part("bow", "cone", (beam / 2, 0.0, length * 0.15), (length * 0.4, hull_h / 2, 0),
             rotation_deg=(0, 0, -90), colour=hull),
    ]
    if rng.random() < 0.5:
        mast = rng.uniform(0.5, 0.8)
        parts += [
            Part("mast", "cylinder", (0.012, mast / 2), (0, hull_h + mast / 2, 0), colour=deck),
            Part("sail", "box", (length * 0.2, mast * 0.4, 0.006), (-length * 0.2, hull_h + mast * 0.5, 0),
                 colour=_jitter(rng, (0.95, 0.95, 0.9), 0.04)),
        ]
    else:
        parts.append(Part("cabin", "box", (length * 0.15, hull_h * 0.8, beam / 2 * 0.7),
                          (-length * 0.15, hull_h * 1.8, 0), colour=deck))
        parts.append(Part("funnel", "cylinder", (0.04, 0.08), (-length * 0.15, hull_h * 2.6 + 0.08, 0),
                          colour=_pick(rng, VIVID)))
    return parts


CLASS_BUILDERS = {
    "airplane": _airplane, "bench": _bench, "cabinet": _cabinet, "car": _car, "chair": _chair,
    "display": _display, "lamp": _lamp, "speaker": _speaker, "rifle": _rifle, "sofa": _sofa,
    "table": _table, "phone": _phone, "watercraft": _watercraft,
}


def make_object(class_name: str, object_id: str, rng: np.random.Generator) -> SDFObject:
    """One random instance of ``class_name``, centred and scaled to ``TARGET_EXTENT``."""
    if class_name not in CLASS_BUILDERS:
        raise ValueError(f"unknown class {class_name!r}; known: {sorted(CLASS_BUILDERS)}")
    return SDFObject(object_id, class_name, normalised(CLASS_BUILDERS[class_name](rng)))


def generate_objects(class_names: list[str], per_class: int, seed: int, out_dir) -> list[dict]:
    """Write ``per_class`` objects of every class as ``<out_dir>/<object_id>.json``.

    Object ``k`` of a class draws from ``default_rng([seed, class position, k])``, so an
    object does not change when other classes or counts change. Returns records
    ``{object_id, class_name, source}`` with ``source`` the JSON path.
    """
    unknown = [c for c in class_names if c not in CLASS_BUILDERS]
    if unknown:
        raise ValueError(f"data.classes: unknown classes {unknown}; known: {sorted(CLASS_BUILDERS)}")
    if per_class < 1:
        raise ValueError(f"data.per_class: must be >= 1, got {per_class}")
    out_dir = Path(out_dir)
    records = []
    for class_name in class_names:
        class_pos = list(CLASS_BUILDERS).index(class_name)
        for k in range(per_class):
            object_id = f"{class_name}_{k:05d}"
            rng = np.random.default_rng([seed, class_pos, k])
            obj = make_object(class_name, object_id, rng)
            path = out_dir / f"{object_id}.json"
            obj.save(path)
            records.append({"object_id": object_id, "class_name": class_name, "source": str(path)})
    return records


@register_source("shapenet", "synthetic")
def synthetic3d_records(section: dict, seed: int, key: str, out_dir: Path) -> pd.DataFrame:
    """Generate the synthetic 3D objects into ``out_dir`` and list them."""
    classes = shapenet_classes(section.get("classes"), f"{key}.classes")
    per_class = positive_int(section, "objects_per_class", key)
    objects = generate_objects(classes, per_class, seed, out_dir)
    df = pd.DataFrame(objects, columns=["object_id", "class_name", "source"])
    foreign = sorted(set(df["class_name"]) - set(classes))
    if foreign:
        raise ValueError(f"{key}.classes: generator returned classes {foreign} not configured")
    df["class_index"] = df["class_name"].map(CLASS_INDEX)
    return df
