"""Benchmark of weight-space sampling: DDIM with 100 steps against DDPM ancestral sampling
over all T = 500 steps (the baseline), same denoiser, same batch, same run.

The denoiser is the hierarchical LoRA layer encoder DiT at the config.yaml sizes on an
mLoRA-shaped layout (rank 4 adapters on the default 6-layer, 48-wide synthesis network);
its weights are untrained, which does not change the cost of a forward pass.
"""
from __future__ import annotations

import time

import torch

from nfws.config_files import repo_section
from nfws.mlora.diffusion import DenoiserConfig, build_denoiser
from nfws.mlora.ddpm import GaussianDiffusion
from nfws.mlora.dit import layout_size

N_SAMPLES = 64


def bench_layout(rank: int = 4, width: int = 48, n_layers: int = 6, out_dim: int = 3) -> list[dict]:
    dims = [(width, width)] * (n_layers - 1) + [(width, out_dim)]
    layout = []
    for l, (d_in, d_out) in enumerate(dims):
        layout += [{"name": f"layer{l}.A", "shape": [rank, d_in], "role": "A"},
                   {"name": f"layer{l}.B", "shape": [d_out, rank], "role": "B"}]
    return layout


def _rate(fn, n: int) -> float:
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def run() -> dict:
    layout, cfg = bench_layout(), DenoiserConfig.from_dict(repo_section("diffusion", "model"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_denoiser("lora_encoder", layout, cfg).eval()
    diffusion = GaussianDiffusion(cfg.timesteps, cfg.beta_start, cfg.beta_end)
    shape = (N_SAMPLES, layout_size(layout))
    ours = _rate(lambda: diffusion.ddim_sample(model, shape, cfg.sampling_steps,
                                               torch.Generator().manual_seed(0)), N_SAMPLES)
    baseline = _rate(lambda: diffusion.ddpm_sample(model, shape, torch.Generator().manual_seed(0)),
                     N_SAMPLES)
    return {"name": "diffusion", "baseline": baseline, "ours": ours, "unit": "weight vectors/s",
            "ratio": ours / baseline, "n_samples": N_SAMPLES, "n_params": shape[1],
            "ddim_steps": cfg.sampling_steps, "ddpm_steps": cfg.timesteps,
            "threads": torch.get_num_threads()}
