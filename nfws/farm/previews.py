"""Preview sheet of one architecture's NeRFs: ground truth beside the NeRF's render.

Held-out views only (the views the shard's PSNR is measured on), on black, so a glance
shows whether the farm's numbers mean what they say.
"""
from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure  # a bare Figure renders with Agg, no pyplot state

from nfws.fields.shard import read_nerf_shard
from nfws.fields.stacks import FieldStack
from nfws.data.views import load_views
from nfws.farm.train import FarmConfig, render_heldout
from nfws.figures import save_figure

DPI = 100


def nerf_previews(shard_path, views_store, out_png, fit: dict, n_objects: int,
                  eval_samples_per_ray: int, tile: int) -> None:
    """Render the held-out views of the first ``n_objects`` NeRFs of a shard (``fit``: the
    ``nerf.fit`` section, rendered in fp32 with ``eval_samples_per_ray``).

    Reads the NeRF shard zarr (weights, object_ids, psnr, sample_box, attrs arch and
    heldout_views) and the views store; writes one PNG: a row per object, for each
    held-out view a (ground truth, NeRF) pair titled with the NeRF's held-out PSNR.
    """
    shard = read_nerf_shard(shard_path, arrays=("psnr", "sample_box"))
    if shard.heldout_views is None:
        raise ValueError(f"{shard_path}: attrs lack 'heldout_views'")
    spec = shard.spec
    n = min(n_objects, len(shard.object_ids))
    if n < 1:
        raise ValueError(f"{shard_path}: shard holds no NeRFs")
    stack = FieldStack.from_arrays(spec, {k: v[:n] for k, v in shard.params.items()})
    ids = shard.object_ids[:n]
    views = load_views(views_store, ids)
    held = list(shard.heldout_views)
    cfg = FarmConfig.from_dict({**fit, "eval_samples_per_ray": eval_samples_per_ray,
                                "precision": "fp32", "heldout_views": held})
    boxes = torch.from_numpy(shard.sample_box[:n])
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
                    f"{label} {float(shard.psnr[row]):.1f} dB"
                ax.set_title(title, fontsize=5)
    fig.suptitle(f"{spec.name}: held-out views, ground truth | NeRF", fontsize=7)
    save_figure(fig, out_png, dpi=DPI)
