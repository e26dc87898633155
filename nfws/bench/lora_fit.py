"""Benchmark of instance fitting: a whole shard in one batched optimisation against fitting
the same instances one at a time (the baseline), same steps and points, same run.

Representation: mLoRA-Asym, rank 4, on an (untrained, which does not change the cost)
modulated base of the default CPU size for 32×32 images; targets are random images.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from nfws.data.targets import ImageTargets
from nfws.mlora.train import fit_params, shared_init
from nfws.mlora.models import build_representation
from nfws.mlora.modulated import ModulatedField

N_INSTANCES, RESOLUTION = 32, 32
FIT = dict(steps=30, points=512, lr_start=1e-2, lr_end=1e-5, log_every=10, checkpoint_every=10**9,
           base_latent="mean", mlp_template_init=False, rank=4, kappa=6.0, mask_seed=0,
           mlora_init="partition", mlora_init_std=0.1)
ARCH = dict(coord_dim=2, out_dim=3, d_z=64, mapping_layers=2, mapping_width=128, n_blocks=2,
            width=64, enc_width=64, omega0=32.0)


def setup(arch: dict, fit: dict, n_instances: int, resolution: int, kind: str = "mlora_asym",
          seed: int = 0):
    """The representation ``kind`` on an untrained modulated base of size ``arch``, random
    ``resolution``² images for ``n_instances`` instances, and their shared start."""
    torch.manual_seed(seed)
    model = ModulatedField(arch)
    weights, biases = model.folded(torch.zeros(arch["d_z"]))
    base = {"weights": weights, "biases": biases, "omega0": arch["omega0"],
            "n_blocks": arch["n_blocks"], "enc_weight": model.encoder.proj.weight.detach(),
            "enc_bias": model.encoder.proj.bias.detach()}
    rep = build_representation(kind, fit, arch["coord_dim"], arch["out_dim"], base)
    rng = np.random.default_rng(seed)
    targets = ImageTargets({"images": rng.integers(0, 256, (n_instances, resolution, resolution, 3),
                                                   np.uint8),
                            "object_ids": np.array([f"i{k}" for k in range(n_instances)]),
                            "labels": np.zeros(n_instances, np.int64)}, {})
    return rep, targets, shared_init(rep, n_instances, seed=seed)


def fit_seconds(rep, start: dict, targets, indices: list[int], fit: dict, device) -> float:
    """Wall seconds of fitting the instances ``indices`` together (one batched optimisation)."""
    t0 = time.perf_counter()
    fit_params(rep, {k: v[indices] for k, v in start.items()}, targets, indices, fit, 0,
               torch.device(device))
    return time.perf_counter() - t0


def run() -> dict:
    rep, targets, start = setup(ARCH, FIT, N_INSTANCES, RESOLUTION)
    baseline = N_INSTANCES / sum(fit_seconds(rep, start, targets, [i], FIT, "cpu")
                                 for i in range(N_INSTANCES))
    ours = N_INSTANCES / fit_seconds(rep, start, targets, list(range(N_INSTANCES)), FIT, "cpu")
    return {"name": "lora_fit", "baseline": baseline, "ours": ours, "unit": "instances/s",
            "ratio": ours / baseline, "instances": N_INSTANCES, "steps": FIT["steps"],
            "points": FIT["points"], "threads": torch.get_num_threads()}
