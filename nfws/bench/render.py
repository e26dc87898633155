"""Render-stage throughput: all views of an object in one traced batch vs one view at a time.

Both paths render the same objects with the same cameras at the default settings (64 x 64,
36 views) and must produce identical images. Runs on one thread, as a render job does when
two jobs share the two cores.
"""
from __future__ import annotations

import time

import numpy as np

from nfws.bench._threads import torch_threads
from nfws.data.cameras import intrinsics_from_fov, orbit_c2w
from nfws.data.shapenet_render import DISN_FOV_X, sample_easy_views
from nfws.data.sphere_trace import render_views
from nfws.data.synthetic3d import make_object

RESOLUTION, N_VIEWS, SEED = 64, 36, 0
CLASSES = ("airplane", "chair", "sofa", "table")


def _scenes():
    scenes = []
    for k, class_name in enumerate(CLASSES):
        rng = np.random.default_rng([SEED, k])
        obj = make_object(class_name, f"bench_{class_name}", rng)
        views = sample_easy_views(N_VIEWS, rng)
        c2w = orbit_c2w(views["azimuth"], views["elevation"], views["distance"])
        intr = intrinsics_from_fov(DISN_FOV_X, RESOLUTION, RESOLUTION).expand(N_VIEWS, 4)
        scenes.append((obj, c2w, intr))
    return scenes


def _batched(obj, c2w, intr):
    return render_views(obj, c2w, intr, RESOLUTION, RESOLUTION)


def _one_at_a_time(obj, c2w, intr):
    return np.concatenate([render_views(obj, c2w[i:i + 1], intr[i:i + 1], RESOLUTION, RESOLUTION)
                           for i in range(len(c2w))])


def _objects_per_second(render, scenes):
    start, cpu = time.perf_counter(), time.process_time()
    images = [render(*scene) for scene in scenes]
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return len(scenes) / wall, len(scenes) / cpu, images


def run() -> dict:
    with torch_threads(1):
        scenes = _scenes()
        _batched(*scenes[0])  # warm-up
        base_wall, base_cpu, base_images = _objects_per_second(_one_at_a_time, scenes)
        ours_wall, ours_cpu, ours_images = _objects_per_second(_batched, scenes)
    identical = all(np.array_equal(a, b) for a, b in zip(base_images, ours_images))
    return {
        "name": "render",
        "unit": "objects/s",
        "baseline": base_wall,
        "ours": ours_wall,
        "ratio": ours_wall / base_wall,
        "baseline_cpu": base_cpu,
        "ours_cpu": ours_cpu,
        "ratio_cpu": ours_cpu / base_cpu,
        "seconds_per_object": 1.0 / ours_wall,
        "identical_images": identical,
        "objects": len(scenes),
        "resolution": RESOLUTION,
        "n_views": N_VIEWS,
        "threads": 1,
    }
