"""Step 3: the NeRF farm on the device against one NeRF at a time on the same device.

Uses the nerf-farm bench's objects, its two recipes (``BASELINE``: fp32, the whole bbox;
``OURS``: bf16, the carved box) and its statistics (:mod:`nfws.bench.nerf_farm`) at this
profile's sizes, with the same steps and rays for both paths. :func:`run` returns, per
architecture, both throughputs and their ratio, the paired PSNR difference, peak GPU
memory, the MLP's share of bf16 matmul peak and NeRFs per hour at the paper recipe, and
writes two PNGs (held-out renders, throughputs).
Details: docs/gpucheck.md, "Step 3: the NeRF farm".
"""
from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from nfws.bench.nerf_farm import (ARCHS, BASELINE, OURS, SEED, compare_paths, farm_config,
                                  fit_alone, matmul_peak, mlp_flops_per_second, points_per_call,
                                  warm_up)
from nfws.data.cameras import pixel_centres, pixel_rays
from nfws.data.contact_sheet import write_sheet
from nfws.data.synthetic_views import synthetic_views
from nfws.figures import save_figure
from nfws.fields.spec import ArchSpec
from nfws.fields.stacks import select
from nfws.data.views import ShardViews
from nfws.farm.train import FarmConfig, autocast, fit_stack, render_heldout
from nfws.farm.rays import split_views
from nfws.gpucheck.report import Context
from nfws.gpucheck.sizes import recipe
from nfws.render.volrend import make_occupancy_estimators, render_rays_occupancy, update_occupancy

#: a rendered NeRF next to the even-sampled one must agree to this PSNR (dB)
OCCUPANCY_AGREEMENT_DB = 25.0
#: grid refreshes before the occupancy render: the max over jittered evaluations marks
#: every cell the NeRF's density touches
GRID_UPDATES = 4
TILE = 96


def resolved_sizes(sizes: dict, fit_recipe: dict) -> dict:
    """The profile's farm sizes with ``"recipe"`` entries read from the paper recipe."""
    keys = {"rays": "rays_per_step", "samples_per_ray": "samples_per_ray"}
    return {k: fit_recipe[keys[k]] if v == "recipe" else v for k, v in sizes.items()}


def path_configs(sz: dict) -> tuple[FarmConfig, FarmConfig]:
    """The baseline's and ours' recipes at these sizes (``samples_per_ray`` None: the bench's)."""
    over = {"points_per_call": sz["points_per_call"]}
    if sz["samples_per_ray"] is not None:
        over["samples_per_ray"] = sz["samples_per_ray"]
    return tuple(farm_config({**path, **over}, sz["steps"], sz["rays"], sz["views"])
                 for path in (BASELINE, OURS))


def _peak_memory(device: torch.device, reset: bool = False) -> float | None:
    if device.type != "cuda":
        return None
    if reset:
        torch.cuda.reset_peak_memory_stats(device)
        return None
    return torch.cuda.max_memory_allocated(device) / 2**30


def occupancy_render(stack, views: ShardViews, view: int, boxes, cfg: FarmConfig, device):
    """One view of each NeRF of ``stack`` rendered through fresh occupancy grids [B, H, W, 3]."""
    B, _, H, W, _ = views.images.shape
    origins, dirs = pixel_rays(torch.from_numpy(views.c2w[:, view])[:, None],
                               torch.from_numpy(views.intrinsics[:, view])[:, None],
                               pixel_centres(H, W).reshape(1, -1, 2))
    estimators = make_occupancy_estimators(boxes, cfg.occupancy_resolution, device)
    for step in range(GRID_UPDATES):
        update_occupancy(estimators, stack, step, cfg.render_step_size, every=1)
    with torch.no_grad(), autocast(device, cfg.precision):
        out = render_rays_occupancy(stack, estimators, origins.to(device), dirs.to(device),
                                    torch.zeros(3, device=device), cfg.render_step_size, False)
    return out.rgb.float().cpu().reshape(B, H, W, 3)


def _renders(name: str, fit, views: ShardViews, cfg: FarmConfig, n: int, device):
    """Sheet rows of the first ``n`` NeRFs of a trained shard and the occupancy-vs-even PSNR."""
    view = split_views(views.images.shape[1], cfg.heldout_views, views.source)[1][0]
    sub, sub_views = select(fit.stack, list(range(n))), views.select(list(range(n)))
    boxes = fit.boxes[:n].to(device)
    even, target = render_heldout(sub, sub_views, [view], boxes, cfg, device)
    even, target = even[:, 0], target[:, 0]
    occ = occupancy_render(sub, sub_views, view, boxes, cfg, device) if device.type == "cuda" else None
    rows = []
    for b in range(n):
        tiles = [target[b], even[b]] + ([] if occ is None else [occ[b], 4 * (occ[b] - even[b]).abs()])
        rows.append((f"{name} {b}", [255 * t.clamp(0, 1).numpy() for t in tiles]))
    agreement = None if occ is None else float(-10 * torch.log10(((occ - even) ** 2).mean()))
    return rows, agreement


def _bench_arch(name: str, views: ShardViews, sz: dict, base_cfg: FarmConfig,
                ours_cfg: FarmConfig, device: torch.device) -> tuple[dict, list]:
    spec = ArchSpec.from_dict(name, ARCHS[name])
    n, shard = len(views.object_ids), sz["shard"]
    shards = [list(range(s, min(s + shard, n))) for s in range(0, n, shard)]
    warm_up(views.select([0]), spec, base_cfg, device)
    warm_up(views.select(shards[0]), spec, ours_cfg, device)
    _peak_memory(device, reset=True)
    base = fit_alone(views.select(list(range(sz["baseline_objects"]))), spec, base_cfg, device)
    base_gib = _peak_memory(device)
    _peak_memory(device, reset=True)
    fits = [fit_stack(views.select(s), spec, ours_cfg, device, SEED, progress=False) for s in shards]
    ours_gib = _peak_memory(device)
    ours = (np.concatenate([f.psnr for f in fits]),
            sum(f.setup_seconds + f.train_seconds for f in fits), sum(f.cpu_seconds for f in fits))
    achieved = mlp_flops_per_second(spec, shard, points_per_call(ours_cfg, shard),
                                    ours_cfg.precision, device)
    rows, agreement = _renders(name, fits[0], views.select(shards[0]), ours_cfg,
                               min(sz["render_nerfs"], len(shards[0])), device)
    result = {**compare_paths(base, ours, sz["steps"]), "mlp_gflops": achieved / 1e9,
              "baseline_peak_gib": base_gib, "ours_peak_gib": ours_gib,
              "all_psnr_finite": bool(np.isfinite(ours[0]).all() and np.isfinite(base[0]).all()),
              "occupancy_vs_even_psnr": agreement}
    result["ratio"] = result["ours"] / result["baseline"]
    result["psnr_delta"] = result["ours_psnr"] - result["baseline_psnr"]
    return result, rows


def _throughput_plot(per_arch: dict, path, device: torch.device) -> None:
    names = list(per_arch)
    fig = Figure(figsize=(5, 3.2))
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(names))
    ax.bar(x - 0.2, [per_arch[n]["baseline"] for n in names], 0.4, label="one at a time")
    ax.bar(x + 0.2, [per_arch[n]["ours"] for n in names], 0.4, label="farm (batched shard)")
    for i, n in enumerate(names):
        ax.text(i + 0.2, per_arch[n]["ours"], f"{per_arch[n]['ratio']:.1f}x", ha="center",
                va="bottom", fontsize=7)
    ax.set_xticks(x, names)
    ax.set_yscale("log")
    ax.set_ylabel("NeRF-steps/s")
    ax.set_title(f"NeRF farm on {device}", fontsize=9)
    ax.legend(fontsize=7)
    save_figure(fig, path, dpi=120)


def run(ctx: Context) -> dict:
    fit_recipe = recipe("shapenet_render")["nerf"]["fit"]
    sz = resolved_sizes(ctx.sizes["nerf_farm"], fit_recipe)
    base_cfg, ours_cfg = path_configs(sz)
    views = synthetic_views(sz["objects"], sz["resolution"], sz["views"], SEED)
    per_arch, skipped, rows = {}, [], []
    for name in sz["archs"]:
        if not ctx.budget.allows(sz["seconds_per_arch"]):
            skipped.append(name)
            continue
        ctx.log.info("nerf_farm: %s (%.0f s left)", name, ctx.budget.remaining())
        per_arch[name], arch_rows = _bench_arch(name, views, sz, base_cfg, ours_cfg, ctx.device)
        rows += arch_rows
        ctx.log.info("nerf_farm: %s %s", name, per_arch[name])
    peak = matmul_peak("bf16", sz["peak_size"], ctx.device)
    samples = sz["rays"] * ours_cfg.samples_per_ray
    recipe_samples = fit_recipe["rays_per_step"] * fit_recipe["samples_per_ray"]
    for r in per_arch.values():
        r["peak_fraction"] = r["mlp_gflops"] * 1e9 / peak
        r["nerfs_per_hour_recipe"] = 3600 * r["ours"] * samples / (fit_recipe["steps"] * recipe_samples)
    if per_arch:
        write_sheet(rows, ctx.out / "farm_renders.png", columns=4, tile=TILE)
        _throughput_plot(per_arch, ctx.out / "farm_throughput.png", ctx.device)
    checks = {"every PSNR finite": all(r["all_psnr_finite"] for r in per_arch.values())}
    if ctx.device.type == "cuda":
        checks[f"occupancy render within {OCCUPANCY_AGREEMENT_DB} dB of the even render"] = all(
            r["occupancy_vs_even_psnr"] >= OCCUPANCY_AGREEMENT_DB for r in per_arch.values())
    return {"per_arch": per_arch, "archs_skipped_for_budget": skipped, "bf16_peak_gflops": peak / 1e9,
            "peak_fraction": float(np.mean([r["peak_fraction"] for r in per_arch.values()]))
            if per_arch else None,
            "sizes": sz, "baseline_cfg": BASELINE, "ours_cfg": OURS,
            "samples_per_step": samples, "recipe": {k: fit_recipe[k] for k in
                                                    ("steps", "rays_per_step", "samples_per_ray")},
            "checks": checks}
