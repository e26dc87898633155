"""Step 4: GMN encoder training and mLoRA instance fitting on the device.

The gmn and lora_fit benches' pieces (:mod:`nfws.bench.gmn`, :mod:`nfws.bench.lora_fit`)
at this profile's sizes: ``paper`` reads them from ``workflow/configs/shapenet_render.yaml``
(GMN) and ``ffhq.yaml`` (mLoRA, 128 x 128 images), ``bench`` takes the benches' own default
CPU sizes, ``tiny`` those below. GMN: graphs/s of one training step per family (MLP, TRI,
HASH: the encoder, the nf2vec decoder's rendering, AdamW), and their harmonic mean, the rate
of an ALL epoch. mLoRA: one batch of ``lora_instances`` mLoRA-Asym instances fitted for
``lora_steps`` steps; instances/s at the recipe's step count = instances / (seconds a step x
recipe steps).
"""
from __future__ import annotations

import torch

from nfws.bench import gmn as gmn_bench
from nfws.bench import lora_fit
from nfws.gpucheck.report import Context
from nfws.gpucheck.sizes import recipe

TINY_GMN = {"encoder": {"hidden": 8, "layers": 2, "d_embed": 16}, "width": 16, "rays": 16,
            "samples": 4, "batch": 2}
TINY_LORA_ARCH = {**lora_fit.ARCH, "d_z": 8, "mapping_layers": 1, "mapping_width": 16,
                  "n_blocks": 1, "width": 16, "enc_width": 16}


def gmn_sizes(which: str) -> dict:
    if which == "bench":
        return dict(gmn_bench.DEFAULT)
    if which == "tiny":
        return dict(TINY_GMN)
    train = recipe("shapenet_render")["gmn"]["train"]
    encoder = {k: v for k, v in train["encoder"].items() if k != "kind"}
    return {"encoder": encoder, "width": train["decoder"]["width"], "rays": train["rays_per_nerf"],
            "samples": train["samples_per_ray"], "batch": train["batch_size"]}


def lora_sizes(which: str) -> tuple[dict, dict, int, int]:
    """(base field arch, fit config, image resolution, recipe steps) for mLoRA fitting."""
    if which == "bench":
        return lora_fit.ARCH, lora_fit.FIT, lora_fit.RESOLUTION, lora_fit.FIT["steps"]
    if which == "tiny":
        return TINY_LORA_ARCH, {**lora_fit.FIT, "points": 64}, 8, lora_fit.FIT["steps"]
    cfg = recipe("ffhq")["lora"]
    base, fit = cfg["base"], cfg["fit"]
    arch = {"coord_dim": 2, "out_dim": 3, "omega0": cfg["datasets"]["faces"]["omega0"],
            **{k: base[k] for k in ("d_z", "mapping_layers", "mapping_width", "n_blocks", "width",
                                    "enc_width")}}
    fit = {**fit, "mlp_template_init": False}
    return arch, fit, cfg["datasets"]["faces"]["targets"]["resolution"], fit["steps"]


def _gmn(ctx: Context, which: str) -> dict:
    sizes = gmn_sizes(which)
    per_family = gmn_bench.step_times(sizes, ctx.sizes["learners"]["gmn_repeats"], device=ctx.device,
                                      warm_up=ctx.sizes["learners"]["gmn_warm_up"])
    rate = len(per_family) / sum(1.0 / r["graphs_per_s"] for r in per_family.values())
    return {"sizes": sizes, "per_family": per_family, "graphs_per_s_all": rate}


def _lora(ctx: Context, which: str) -> dict:
    arch, fit, resolution, recipe_steps = lora_sizes(which)
    n, steps = ctx.sizes["learners"]["lora_instances"], ctx.sizes["learners"]["lora_steps"]
    fit = {**fit, "steps": steps, "log_every": steps, "checkpoint_every": 10**9}
    rep, targets, start = lora_fit.setup(arch, fit, n, resolution)
    indices = list(range(n))
    lora_fit.fit_seconds(rep, start, targets, indices, {**fit, "steps": 1, "log_every": 1}, ctx.device)
    if ctx.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(ctx.device)
    per_step = lora_fit.fit_seconds(rep, start, targets, indices, fit, ctx.device) / steps
    return {"arch": arch, "points": fit["points"], "rank": fit["rank"], "resolution": resolution,
            "instances": n, "steps_timed": steps, "seconds_per_step": per_step,
            "recipe_steps": recipe_steps, "instances_per_s_recipe": n / (per_step * recipe_steps),
            "peak_gib": torch.cuda.max_memory_allocated(ctx.device) / 2**30
            if ctx.device.type == "cuda" else None}


def run(ctx: Context) -> dict:
    which = ctx.sizes["learners"]["sizes"]
    gmn, lora = _gmn(ctx, which), _lora(ctx, which)
    ctx.log.info("learners: gmn %.2f graphs/s, mLoRA %.3g s a step for %d instances",
                 gmn["graphs_per_s_all"], lora["seconds_per_step"], lora["instances"])
    rates = [gmn["graphs_per_s_all"], lora["instances_per_s_recipe"]]
    return {"gmn": gmn, "mlora": lora,
            "checks": {"finite, positive rates": all(0 < r < float("inf") for r in rates)}}
