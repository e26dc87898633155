"""Views of synthetic objects rendered in memory, as the data stage renders the default
dataset: training data for tests and benchmarks without a views store on disk."""
from __future__ import annotations

import numpy as np

from nfws.data.cameras import intrinsics_from_fov, orbit_c2w
from nfws.data.shapenet_render import DISN_FOV_X
from nfws.data.sphere_trace import object_rng, render_object
from nfws.data.synthetic3d import CLASS_BUILDERS, make_object
from nfws.data.views import ShardViews


def synthetic_views(n_objects: int, resolution: int, n_views: int, seed: int) -> ShardViews:
    """Views of ``n_objects`` synthetic objects (classes in turn), rendered in memory
    exactly as the data stage renders the default dataset."""
    classes = list(CLASS_BUILDERS)
    ids, images, c2ws = [], [], []
    for k in range(n_objects):
        class_name = classes[k % len(classes)]
        oid = f"{class_name}_{k // len(classes):05d}"
        obj = make_object(class_name, oid, np.random.default_rng([seed, k]))
        img, views = render_object(obj, resolution, n_views, object_rng(seed, oid))
        ids.append(oid)
        images.append(img)
        c2ws.append(orbit_c2w(views["azimuth"], views["elevation"], views["distance"]).numpy())
    intr = intrinsics_from_fov(DISN_FOV_X, resolution, resolution).expand(n_views, 4).numpy()
    return ShardViews(ids, np.stack(images), np.stack(c2ws).astype(np.float32),
                      np.broadcast_to(intr, (n_objects, n_views, 4)).astype(np.float32).copy())
