"""Benchmark: the NeRF farm against one-NeRF-at-a-time float32 training.

Both paths train the same objects from the same starting fields with the same steps,
rays and background colours. Baseline: each NeRF alone (B = 1), float32, the whole bbox.
Ours: the farm's default path (32-NeRF shards, single-thread worker processes, bf16,
16 samples a ray in the carved box). :func:`run` returns, per architecture, NeRF-steps/s
of both, their held-out PSNRs and paired differences, and the MLP's share of matmul peak.
Setup and reported fields: docs/design.md, "NeRF farm benchmark".
"""
from __future__ import annotations

import multiprocessing
import os
import threading
import time
from dataclasses import replace

import numpy as np
import torch

from nfws.bench._threads import torch_threads
from nfws.data.synthetic_views import synthetic_views
from nfws.data.views import ShardViews
from nfws.fields.spec import ArchSpec
from nfws.fields.stacks import make_stack
from nfws.config_files import repo_section
from nfws.farm.train import FarmConfig, autocast, fit_stack
from nfws.jobenv import malloc_env_active


#: The three training architectures (paper Table 7, docs/recipes.md).
ARCHS = {
    "MLP": {"family": "MLP"},
    "TRI": {"family": "TRI", "activation": "sine", "triplane_res": 32, "triplane_channels": 16},
    "HASH": {"family": "HASH", "hash_levels": 4, "hash_log2_T": 12, "hash_features": 2},
}
#: SHARD: the default config's shard size (``nerf.shard_size``); N_OBJECTS: two shards, so
#: the median PSNR of each path is read off 64 NeRFs (with 32, its standard error was
#: about the 0.3 dB it is compared against)
SHARD, N_OBJECTS, RESOLUTION, N_VIEWS, STEPS, RAYS, SEED = 32, 64, 64, 12, 160, 128, 0
WARM_UP_STEPS = 8
#: threads of one worker process (a pipeline NeRF job's ``resources.nerf.threads``), at
#: which ours trains and its peak fraction is read
WORKER_THREADS = 1
#: how long the worker processes may take to start and warm up
WORKER_READY_SECONDS = 600
#: the reference way: one NeRF at a time, float32, the whole bbox at ~0.045 spacing
BASELINE = {"samples_per_ray": 32, "eval_samples_per_ray": 64, "precision": "fp32",
            "carve_resolution": 0, "skip_resolution": 0}
#: the farm's default path: the shard at once, bf16 matmuls, 16 samples a ray inside the
#: carved box, placed on the occupied cells from a quarter of the steps on; held-out views
#: rendered with 48 even samples in the box, 0.93-1.33x the baseline's 64-over-the-bbox
#: spacing for these boxes (evaluation is not timed)
OURS = {"samples_per_ray": 16, "eval_samples_per_ray": 48, "precision": "bf16",
        "carve_resolution": 24, "skip_resolution": 16, "skip_after": 0.25}


def farm_config(overrides: dict, steps: int = STEPS, rays: int = RAYS,
                n_views: int = N_VIEWS) -> FarmConfig:
    """The bench's recipe for one path: config.yaml's ``nerf.fit`` with ``steps`` steps of
    ``rays`` rays and two held-out views."""
    return FarmConfig.from_dict({**repo_section("nerf", "fit"), "steps": steps,
                                 "rays_per_step": rays, "log_every": steps,
                                 "checkpoint_every": steps, "heldout_views": [0, n_views // 2],
                                 "psnr_floor": -1e9, **overrides})


def points_per_call(cfg: FarmConfig, shard: int = SHARD) -> int:
    """Points per NeRF in one of the farm's batched field calls (its ray chunking)."""
    return (min(cfg.rays_per_step, cfg.points_per_call // (shard * cfg.samples_per_ray))
            * cfg.samples_per_ray)


def _mlp_flops(spec: ArchSpec, n_points: int, input_grad: bool) -> float:
    """Matmul FLOPs of one forward + backward of the MLP over n_points (per NeRF)."""
    per_point = 0.0
    for i, (out_dim, in_dim) in enumerate(spec.mlp_shapes()):
        mults = 2 if (i == 0 and not input_grad) else 3   # fwd, weight grad, input grad
        per_point += mults * 2 * out_dim * in_dim
    return per_point * n_points


def median_difference_interval(base: np.ndarray, ours: np.ndarray, seed: int,
                               resamples: int = 2000, level: float = 0.95) -> tuple[float, float]:
    """Paired bootstrap interval of ``median(ours) - median(base)``: NeRFs are resampled
    with replacement, each keeping both its PSNRs. The difference of medians is what the
    quality goal compares, and it jumps when either path's PSNRs leave a gap near the
    middle; the interval says how far the NeRFs at hand pin it down."""
    if base.shape != ours.shape or base.ndim != 1 or len(base) < 2:
        raise ValueError(f"median_difference_interval: need two equal 1-D arrays of >= 2 "
                         f"paired PSNRs, got shapes {base.shape} and {ours.shape}")
    idx = np.random.default_rng(seed).integers(0, len(base), (resamples, len(base)))
    diffs = np.median(ours[idx], axis=1) - np.median(base[idx], axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(diffs, tail)), float(np.quantile(diffs, 1 - tail))


def _best_seconds(fn, device: torch.device, repeats: int = 3) -> float:
    """Fastest of ``repeats`` timed calls after one untimed call (CUDA work awaited)."""
    def timed() -> float:
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    timed()
    return min(timed() for _ in range(repeats))


def _rand(shape, gen: torch.Generator, dtype, device: torch.device) -> torch.Tensor:
    """Uniform draws from ``gen`` (on the CPU, so every device gets the same numbers)."""
    return torch.rand(*shape, generator=gen).to(device=device, dtype=dtype)


def mlp_flops_per_second(spec: ArchSpec, n_fields: int, n_points: int, precision: str,
                         device="cpu") -> float:
    """Achieved matmul FLOP/s of the batched MLP (forward + backward) at the farm's shapes."""
    device = torch.device(device)
    gen = torch.Generator().manual_seed(SEED)
    stack = make_stack(spec, n_fields, gen, device)
    input_grad = spec.family != "MLP"
    feats = _rand((n_fields, n_points, spec.encoding_dim), gen, torch.float32,
                  device).requires_grad_(input_grad)

    def step():
        with autocast(device, precision):
            out = stack.mlp(feats)
        out.float().sum().backward()

    return n_fields * _mlp_flops(spec, n_points, input_grad) / _best_seconds(step, device)


def _dtype(precision: str) -> torch.dtype:
    return torch.bfloat16 if precision == "bf16" else torch.float32


def hidden_bmm_flops_per_second(n_fields: int, n_points: int, width: int, precision: str,
                                device="cpu") -> float:
    """FLOP/s of one bare hidden-layer matmul ``[B, N, W] @ [B, W, W]``: the most the MLP's
    shapes allow on this machine, against which ``peak_fraction`` is read."""
    device, gen = torch.device(device), torch.Generator().manual_seed(SEED)
    a = _rand((n_fields, n_points, width), gen, _dtype(precision), device)
    w = _rand((n_fields, width, width), gen, _dtype(precision), device)
    return 2 * n_fields * n_points * width * width / _best_seconds(lambda: torch.bmm(a, w), device)


def matmul_peak(precision: str, size: int = 2048, device="cpu") -> float:
    """FLOP/s of one large square matmul in this process (at its thread count on the CPU)."""
    device, gen = torch.device(device), torch.Generator().manual_seed(SEED)
    a = _rand((size, size), gen, _dtype(precision), device)
    b = _rand((size, size), gen, _dtype(precision), device)
    return 2 * size**3 / _best_seconds(lambda: a @ b, device)


def warm_up(views: ShardViews, spec: ArchSpec, cfg: FarmConfig, device="cpu") -> None:
    """A few steps of one path on the views it is timed on, untimed: the process's first
    calls (lazy initialisation, kernels built for new shapes) would otherwise land in
    whichever path runs first."""
    fit_stack(views, spec, replace(cfg, steps=WARM_UP_STEPS, log_every=WARM_UP_STEPS,
                                   checkpoint_every=WARM_UP_STEPS), device, SEED, progress=False)


#: what a worker process keeps between its shards
_WORKER: dict = {}


def _init_worker(views: ShardViews, spec: ArchSpec, cfg: FarmConfig, shard: list[int],
                 barrier) -> None:
    """One thread, the views and recipe kept, warmed up on one shard; then wait at
    ``barrier`` until every worker is ready, so neither start-up nor warm-up is timed."""
    torch.set_num_threads(WORKER_THREADS)
    _WORKER.update(views=views, spec=spec, cfg=cfg)
    warm_up(views.select(shard), spec, cfg)
    barrier.wait()


def _fit_shard(shard: list[int]) -> tuple[int, np.ndarray, float, float]:
    r = fit_stack(_WORKER["views"].select(shard), _WORKER["spec"], _WORKER["cfg"], "cpu", SEED,
                  progress=False)
    return os.getpid(), r.psnr, r.setup_seconds + r.train_seconds, r.cpu_seconds


def fit_in_workers(views: ShardViews, spec: ArchSpec, cfg: FarmConfig, shards: list[list[int]],
                   workers: int) -> tuple[np.ndarray, float, float]:
    """Train ``shards`` (lists of object positions) spread over ``workers`` single-thread
    processes, as ``snakemake --cores N`` runs the NeRF stage. Returns the PSNRs in shard
    order, the busiest worker's setup + training seconds, and the workers' CPU seconds."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(workers + 1)
    with ctx.Pool(workers, _init_worker, (views, spec, cfg, shards[0], barrier)) as pool:
        try:
            barrier.wait(timeout=WORKER_READY_SECONDS)
        except threading.BrokenBarrierError:
            raise RuntimeError(f"nerf-farm bench: the {spec.name} worker processes were not "
                               f"ready within {WORKER_READY_SECONDS} s (their errors are above)"
                               ) from None
        out = pool.map(_fit_shard, shards, chunksize=1)
        pool.close()
        pool.join()
    busy: dict[int, float] = {}
    for pid, _, seconds, _ in out:
        busy[pid] = busy.get(pid, 0.0) + seconds
    return np.concatenate([o[1] for o in out]), max(busy.values()), sum(o[3] for o in out)


def fit_alone(views: ShardViews, spec: ArchSpec, cfg: FarmConfig,
              device="cpu") -> tuple[np.ndarray, float, float]:
    """The baseline: every NeRF of ``views`` trained by itself (B = 1), one after another.
    Returns the PSNRs, the setup + training seconds and the CPU seconds, summed over NeRFs."""
    runs = [fit_stack(views.select([b]), spec, cfg, device, SEED, progress=False)
            for b in range(len(views.object_ids))]
    return (np.concatenate([r.psnr for r in runs]),
            sum(r.setup_seconds + r.train_seconds for r in runs), sum(r.cpu_seconds for r in runs))


def compare_paths(base: tuple[np.ndarray, float, float], ours: tuple[np.ndarray, float, float],
                  steps: int) -> dict:
    """NeRF-steps/s, CPU seconds and paired PSNRs of the two paths from their ``(PSNRs,
    seconds, CPU seconds)``, every NeRF trained ``steps`` steps. The baseline's NeRFs are the
    first of ours (here all of them): its PSNRs are paired with those."""
    (base_psnr, base_seconds, base_cpu), (ours_psnr, ours_seconds, ours_cpu) = base, ours
    paired = ours_psnr[:len(base_psnr)]
    delta = paired - base_psnr      # the same object in both paths
    return {"baseline": len(base_psnr) * steps / base_seconds,
            "ours": len(ours_psnr) * steps / ours_seconds,
            "baseline_cpu_seconds": base_cpu, "ours_cpu_seconds": ours_cpu,
            "ratio_cpu": base_cpu / len(base_psnr) / (ours_cpu / len(ours_psnr)),
            "baseline_psnr": float(np.median(base_psnr)), "ours_psnr": float(np.median(paired)),
            "psnr_delta_mean": float(np.mean(delta)),
            "psnr_delta_median": float(np.median(delta)),
            "psnr_delta_sd": float(np.std(delta, ddof=1)),
            "psnr_delta_ci95": median_difference_interval(base_psnr, paired, SEED)}


def _bench_arch(name: str, views: ShardViews, workers: int) -> dict:
    spec = ArchSpec.from_dict(name, ARCHS[name])
    base_cfg, ours_cfg = farm_config(BASELINE), farm_config(OURS)
    warm_up(views.select([0]), spec, base_cfg)
    base = fit_alone(views, spec, base_cfg)
    shards = [list(range(s, s + SHARD)) for s in range(0, N_OBJECTS, SHARD)]
    ours = fit_in_workers(views, spec, ours_cfg, shards, workers)
    with torch_threads(WORKER_THREADS):
        achieved = mlp_flops_per_second(spec, SHARD, points_per_call(ours_cfg), ours_cfg.precision)
    return {**compare_paths(base, ours, STEPS), "mlp_gflops": achieved / 1e9}


def run() -> dict:
    """NeRF-steps/s of the farm's default path vs one-at-a-time float32 for MLP, TRI, HASH."""
    views = synthetic_views(N_OBJECTS, RESOLUTION, N_VIEWS, SEED)
    # workers share this process's threads, at most one worker per shard
    workers = min(torch.get_num_threads() // WORKER_THREADS, N_OBJECTS // SHARD)
    per_arch = {name: _bench_arch(name, views, workers) for name in ARCHS}
    with torch_threads(WORKER_THREADS):
        peak = matmul_peak(OURS["precision"])
        shape_peak = hidden_bmm_flops_per_second(SHARD, points_per_call(farm_config(OURS)),
                                                 ArchSpec.from_dict("MLP", ARCHS["MLP"]).width,
                                                 OURS["precision"])
        fp32_peak = matmul_peak("fp32")
    for r in per_arch.values():
        r["ratio"] = r["ours"] / r["baseline"]
        r["psnr_delta"] = r["ours_psnr"] - r["baseline_psnr"]
        r["peak_fraction"] = r["mlp_gflops"] * 1e9 / peak
    n = len(per_arch)
    base_total = n * N_OBJECTS * STEPS / sum(N_OBJECTS * STEPS / r["baseline"] for r in per_arch.values())
    ours_total = n * N_OBJECTS * STEPS / sum(N_OBJECTS * STEPS / r["ours"] for r in per_arch.values())
    return {
        "name": "nerf-farm", "unit": "NeRF-steps/s",
        "baseline": base_total, "ours": ours_total, "ratio": ours_total / base_total,
        "ratio_cpu": sum(r["baseline_cpu_seconds"] for r in per_arch.values())
        / sum(r["ours_cpu_seconds"] for r in per_arch.values()),
        "peak_fraction": float(np.mean([r["peak_fraction"] for r in per_arch.values()])),
        "peak_precision": OURS["precision"], "peak_gflops": peak / 1e9,
        "hidden_bmm_gflops": shape_peak / 1e9, "hidden_bmm_fraction": shape_peak / peak,
        "fp32_peak_gflops": fp32_peak / 1e9,
        "min_psnr_delta": min(r["psnr_delta"] for r in per_arch.values()),
        "min_psnr_delta_mean": min(r["psnr_delta_mean"] for r in per_arch.values()),
        "per_arch": per_arch, "objects": N_OBJECTS, "shard_size": SHARD, "steps": STEPS, "rays_per_step": RAYS,
        "baseline_cfg": BASELINE, "ours_cfg": OURS, "threads": torch.get_num_threads(),
        "ours_workers": workers, "threads_per_worker": WORKER_THREADS,
        "malloc_env": malloc_env_active(),
    }
