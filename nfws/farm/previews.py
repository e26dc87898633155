"""Preview sheet of one architecture's NeRFs: ground truth beside the NeRF's render.

Held-out views only (the views the shard's PSNR is measured on), on black, so a glance
shows whether the farm's numbers mean what they say.
"""
from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure  # a bare Figure renders with Agg, no pyplot state

from nfws.fields.spec import ArchSpec
from nfws.fields.stacks import FieldStack
from nfws.data.views import load_views
from nfws.farm.train import FarmConfig, render_heldout
from nfws.figures import save_figure
from nfws.store import read_zarr

DPI = 100


def nerf_previews(shard_path, views_store, out_png, n_objects: int = 4,
                  eval_samples_per_ray: int = 32, tile: int = 96) -> None:
    """Render the held-out views of the first ``n_objects`` NeRFs of a shard.

    Reads the NeRF shard zarr (weights, object_ids, psnr, sample_box, attrs arch and
    heldout_views) and the views store; writes one PNG: a row per object, for each
    held-out view a (ground truth, NeRF) pair titled with the NeRF's held-out PSNR.
    """
    arrays, attrs = read_zarr(shard_path)
    for key in ("arch", "heldout_views"):
        if key not in attrs:
            raise ValueError(f"{shard_path}: attrs lack {key!r}")
    spec = ArchSpec.from_dict(data=attrs["arch"])
    n = min(n_objects, len(arrays["object_ids"]))
    if n < 1:
        raise ValueError(f"{shard_path}: shard holds no NeRFs")
    stack = FieldStack.from_arrays(spec, {k: arrays[k][:n] for k in spec.param_shapes()})
    ids = [str(s) for s in arrays["object_ids"][:n]]
    views = load_views(views_store, ids)
    held = list(attrs["heldout_views"])
    cfg = FarmConfig.from_dict({"eval_samples_per_ray": eval_samples_per_ray, "precision": "fp32",
                                "heldout_views": held})
    boxes = torch.from_numpy(arrays["sample_box"][:n])
    rgb, target = render_heldout(stack, views, held, boxes, cfg, "cpu")

    cols = 2 * len(held)
    fig = Figure(figsize=(cols * tile / DPI, n * (tile + 14) / DPI), dpi=DPI)
    for row in range(n):
        for j in range(len(held)):
            for k, (image, label) in enumerate(((target, "GT"), (rgb, "NeRF"))):
                ax = fig.add_subplot(n, cols, row * cols + 2 * j + k + 1)
                ax.imshow(np.clip(image[row, j].numpy(), 0, 1))
                ax.set_axis_off()
                title = f"{ids[row]} v{held[j]}" if k == 0 else \
                    f"{label} {float(arrays['psnr'][row]):.1f} dB"
                ax.set_title(title, fontsize=5)
    fig.suptitle(f"{spec.name}: held-out views, ground truth | NeRF", fontsize=7)
    save_figure(fig, out_png, dpi=DPI)
