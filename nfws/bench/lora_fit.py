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
from nfws.fit.instances import fit_params, shared_init
from nfws.models.lora import build_representation
from nfws.models.modulated import ModulatedField

N_INSTANCES = 32
FIT = dict(steps=30, points=512, lr_start=1e-2, lr_end=1e-5, log_every=10, checkpoint_every=10**9,
           base_latent="mean", mlp_template_init=False, rank=4, kappa=6.0, mask_seed=0,
           mlora_init_std=0.1)
ARCH = dict(coord_dim=2, out_dim=3, d_z=64, mapping_layers=2, mapping_width=128, n_blocks=2,
            width=64, enc_width=64, omega0=32.0)


def run() -> dict:
    torch.manual_seed(0)
    model = ModulatedField(ARCH)
    weights, biases = model.folded(torch.zeros(ARCH["d_z"]))
    base = {"weights": weights, "biases": biases, "omega0": ARCH["omega0"], "n_blocks": 2,
            "enc_weight": model.encoder.proj.weight.detach(),
            "enc_bias": model.encoder.proj.bias.detach()}
    rep = build_representation("mlora_asym", FIT, 2, 3, base)
    rng = np.random.default_rng(0)
    targets = ImageTargets({"images": rng.integers(0, 256, (N_INSTANCES, 32, 32, 3), np.uint8),
                            "object_ids": np.array([f"i{k}" for k in range(N_INSTANCES)]),
                            "labels": np.zeros(N_INSTANCES, np.int64)}, {})
    cpu = torch.device("cpu")
    start = shared_init(rep, N_INSTANCES, seed=0)
    t0 = time.perf_counter()
    for i in range(N_INSTANCES):
        fit_params(rep, {k: v[i:i + 1] for k, v in start.items()}, targets, [i], FIT, 0, cpu)
    baseline = N_INSTANCES / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    fit_params(rep, start, targets, list(range(N_INSTANCES)), FIT, 0, cpu)
    ours = N_INSTANCES / (time.perf_counter() - t0)
    return {"name": "lora_fit", "baseline": baseline, "ours": ours, "unit": "instances/s",
            "ratio": ours / baseline, "instances": N_INSTANCES, "steps": FIT["steps"],
            "points": FIT["points"], "threads": torch.get_num_threads()}
