"""The NeRF farm: train a shard of B NeRFs of one architecture at once.

One :class:`~nfws.fields.stacks.FieldStack` holds the B NeRFs; one Adam steps all their
stacked parameters. Adam is elementwise and the loss is the *sum* of per-NeRF losses, so
every NeRF follows exactly the trajectory it would follow alone; batching only turns B
small matmuls into one big ``bmm``. Each NeRF draws its rays, background colours and
sample jitter from streams of its own (:mod:`nfws.farm.streams`), so on the CPU a NeRF
trained in any shard is the NeRF trained alone, up to floating-point rounding.

The recipe, the carved sampling box and the empty-space skipping are in
docs/recipes.md, "NeRF fitting".
"""
from __future__ import annotations

import contextlib
import functools
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from nfws.data.cameras import pixel_rays
from nfws.data.views import ShardViews, check_views, load_views
from nfws.fields.shard import NerfShard, write_nerf_shard
from nfws.fields.spec import ArchSpec
from nfws.fields.stacks import INIT_MODES, FieldStack, initial_stack, keyed_generator
from nfws.divergence import ON_FAILURE, divergence_reasons
from nfws.farm.rays import RayBank, object_boxes, split_views
from nfws.farm.streams import NerfStreams
from nfws.render.sampling import ray_box_intersect
from nfws.render.skipping import OccupancyCells
from nfws.render.volrend import (make_occupancy_estimators, render_pixels, render_rays,
                                 render_rays_occupancy, update_occupancy)
from nfws.checkpoint import Checkpoint, input_fingerprint
from nfws.config_files import Section
from nfws.store import config_hash

#: checkpoint layout; a checkpoint of another layout is set aside, not misread
CHECKPOINT_FORMAT = 3
PRECISIONS = ("auto", "bf16", "fp32")   # auto: resolved_precision


@dataclass(frozen=True)
class FarmConfig(Section):
    """The ``nerf.fit`` config section."""

    SECTION = "nerf.fit"
    steps: int
    rays_per_step: int
    samples_per_ray: int
    eval_samples_per_ray: int
    lr: float
    adam_eps: float
    decay_at: tuple
    decay_factor: float
    heldout_views: tuple
    log_every: int
    checkpoint_every: int
    psnr_floor: float
    max_weight_growth: float
    on_failure: str
    precision: str
    carve_resolution: int
    points_per_call: int
    occupancy_resolution: int
    render_step_size: float
    occupancy_every: int
    skip_resolution: int
    skip_after: float
    skip_every: int
    skip_bins: int
    skip_floor: float
    init: str

    def check(self, section: str) -> None:
        def bad(key, why):
            self.bad(section, key, why)

        for key in ("steps", "rays_per_step", "samples_per_ray", "eval_samples_per_ray",
                    "log_every", "checkpoint_every", "points_per_call", "occupancy_resolution",
                    "occupancy_every", "skip_every", "skip_bins"):
            if int(getattr(self, key)) < 1:
                bad(key, "must be >= 1")
        if self.steps % self.log_every:
            bad("log_every", f"must divide steps ({self.steps})")
        if self.max_weight_growth <= 1:
            bad("max_weight_growth", "must be > 1 (a multiple of the starting weight scale)")
        if self.lr <= 0 or self.adam_eps <= 0:
            bad("lr" if self.lr <= 0 else "adam_eps", "must be > 0")
        if not all(0 < f < 1 for f in self.decay_at):
            bad("decay_at", "fractions must lie in (0, 1)")
        if not self.heldout_views:
            bad("heldout_views", "needs at least one held-out view")
        if self.on_failure not in ON_FAILURE:
            bad("on_failure", f"must be one of {ON_FAILURE}")
        if self.precision not in PRECISIONS:
            bad("precision", f"must be one of {PRECISIONS}")
        if self.carve_resolution < 0:
            bad("carve_resolution", "must be >= 0 (0 = no carving, sample the whole bbox)")
        if self.skip_resolution < 0:
            bad("skip_resolution", "must be >= 0 (0 = even samples throughout)")
        if not 0 <= self.skip_after < 1:
            bad("skip_after", "must lie in [0, 1)")
        if not 0 < self.skip_floor <= 1:
            bad("skip_floor", "must lie in (0, 1]")
        if self.init not in INIT_MODES:
            bad("init", f"must be one of {list(INIT_MODES)}")

    @property
    def skip_start(self) -> int:
        """First training step whose samples follow the occupied cells (the CPU path)."""
        return int(self.skip_after * self.steps)

    def lr_at(self, step: int) -> float:
        passed = sum(step >= int(f * self.steps) for f in self.decay_at)
        return self.lr * self.decay_factor**passed


@dataclass
class FitResult:
    stack: FieldStack
    boxes: torch.Tensor          # [B, 2, 3]
    psnr: np.ndarray             # [B]
    loss_curve: np.ndarray       # [B, n_logged]
    failures: list[dict]         # {object_id, arch, reason}
    setup_seconds: float         # carving + ray bank
    train_seconds: float
    eval_seconds: float
    cpu_seconds: float           # process CPU time of setup + training (robust to a busy host)


def resolved_precision(device: torch.device, precision: str) -> str:
    """``auto``: bf16 on CUDA; fp32 elsewhere, where bf16 matmuls are emulated (on a
    2-core x86 CPU a TRI shard's forward and backward pass took 23x longer in bf16)."""
    if precision == "auto":
        return "bf16" if torch.device(device).type == "cuda" else "fp32"
    return precision


def autocast(device: torch.device, precision: str):
    if resolved_precision(device, precision) == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def fit_stack(views: ShardViews, spec: ArchSpec, cfg: FarmConfig, device, seed: int,
              checkpoint: Checkpoint | None = None, progress: bool = True) -> FitResult:
    """Train B NeRFs on their views; evaluate held-out PSNR; collect failures."""
    t_setup, cpu_start = time.perf_counter(), time.process_time()
    device = torch.device(device)
    check_views(views)
    B = len(views.object_ids)
    train_idx, held_idx = split_views(views.images.shape[1], cfg.heldout_views, views.source)
    boxes = object_boxes(views, train_idx, spec, cfg.carve_resolution).to(device)
    bank = RayBank(views, train_idx, boxes, device)

    stack = initial_stack(spec, views.object_ids, cfg.init, seed, device)
    start_params = {k: v.detach().clone() for k, v in stack.params.items()}
    streams = NerfStreams(seed, spec.name, views.object_ids)
    # fused: one kernel per stacked tensor; on the CPU 4-7x faster than the default
    # per-op loop (measured on 6 and 32 stacked TRI fields), same elementwise update
    optimiser = torch.optim.Adam(stack.parameters(), lr=cfg.lr, eps=cfg.adam_eps, fused=True)
    estimators = (make_occupancy_estimators(boxes, cfg.occupancy_resolution, device)
                  if device.type == "cuda" else None)
    if estimators is not None:  # nerfacc's grid updates and jitter draw from the global generator
        torch.manual_seed(keyed_generator(seed, spec.name, *views.object_ids).initial_seed())
    cells = (OccupancyCells(boxes, cfg.skip_resolution, cfg.skip_start, cfg.skip_every)
             if estimators is None and cfg.skip_resolution else None)
    n_logged = cfg.steps // cfg.log_every
    state = {"step": 0, "loss_acc": torch.zeros(B, dtype=torch.float64),
             "loss_curve": torch.zeros(B, n_logged), "failed_step": torch.full((B,), -1)}
    saved = checkpoint.load(device) if checkpoint is not None else None
    if saved is not None:
        state = _restore(saved, stack, optimiser, streams, estimators, cells)

    chunk = max(1, min(cfg.rays_per_step, cfg.points_per_call // (B * cfg.samples_per_ray)))
    start = time.perf_counter()
    setup_seconds = start - t_setup
    bar = tqdm(range(state["step"], cfg.steps), total=cfg.steps, initial=state["step"],
               desc=f"{spec.name} x{B}", disable=not progress, mininterval=2.0)
    for step in bar:
        for group in optimiser.param_groups:
            group["lr"] = cfg.lr_at(step)
        losses = _train_step(stack, bank, boxes, cfg, streams, device, chunk, estimators,
                             cells, step)
        optimiser.step()
        bad = ~torch.isfinite(losses) & (state["failed_step"] < 0)
        state["failed_step"][bad] = step
        state["loss_acc"] += losses
        if (step + 1) % cfg.log_every == 0:
            state["loss_curve"][:, (step + 1) // cfg.log_every - 1] = state["loss_acc"] / cfg.log_every
            state["loss_acc"].zero_()
            bar.set_postfix(loss=f"{float(losses.nan_to_num().median()):.4f}")
        state["step"] = step + 1
        if checkpoint is not None and (step + 1) % cfg.checkpoint_every == 0 \
                and step + 1 < cfg.steps:
            checkpoint.save(_progress(state, stack, optimiser, streams, estimators, cells))
    train_seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start

    psnr = heldout_psnr(stack, views, held_idx, boxes, cfg, device)
    diverged = divergence_reasons(state["loss_curve"].numpy(), start_params, stack.params,
                                  cfg.max_weight_growth)
    failures = _failures(views.object_ids, spec.name, state["failed_step"], diverged, psnr,
                         cfg.psnr_floor)
    return FitResult(stack, boxes.cpu(), psnr, state["loss_curve"].numpy(), failures,
                     setup_seconds, train_seconds, time.perf_counter() - start - train_seconds,
                     cpu_seconds)


def _train_step(stack, bank, boxes, cfg, streams, device, chunk, estimators, cells, step):
    """One optimiser step's gradients; returns the per-NeRF loss [B] (float64, CPU).

    CPU path with ``cells``: from ``cfg.skip_start`` on, the cells are refreshed from the
    NeRFs' own density (spacing: box diagonal / samples per ray) every ``cfg.skip_every``
    steps and place each ray's samples (:meth:`OccupancyCells.bin_weights`)."""
    B, R, S = len(boxes), cfg.rays_per_step, cfg.samples_per_ray
    origins, dirs, rgba = bank.draw(streams.uniform("rays", R, dtype=torch.float64))
    background = streams.uniform("background", R, 3).to(device)
    jitter = streams.uniform("jitter", R, S) if estimators is None else None
    target = rgba[..., :3] * rgba[..., 3:] + background * (1.0 - rgba[..., 3:])
    if estimators is not None:
        update_occupancy(estimators, stack, step, cfg.render_step_size, every=cfg.occupancy_every)
    guided = cells is not None and step >= cfg.skip_start
    if guided and cells.due(step):
        with autocast(device, cfg.precision):
            cells.update(stack, (boxes[:, 1] - boxes[:, 0]).norm(dim=-1) / S,
                         streams.uniform("cells", cells.resolution**3, 3), cfg.points_per_call)
    bin_weights = (functools.partial(cells.bin_weights, n_bins=cfg.skip_bins, floor=cfg.skip_floor)
                   if guided else None)
    stack.zero_grad(set_to_none=True)
    losses = torch.zeros(B, dtype=torch.float64)
    for i in range(0, R, chunk):
        s = slice(i, i + chunk)
        with autocast(device, cfg.precision):
            if estimators is None:
                out = render_rays(stack, origins[:, s], dirs[:, s], boxes, S, background[:, s],
                                  jitter[:, s], bin_weights)
            else:
                out = render_rays_occupancy(stack, estimators, origins[:, s], dirs[:, s],
                                            background[:, s], cfg.render_step_size, True)
        per_nerf = torch.nn.functional.smooth_l1_loss(out.rgb.float(), target[:, s],
                                                      reduction="none").mean(-1).sum(-1) / R
        per_nerf.sum().backward()
        losses += per_nerf.detach().double().cpu()
    return losses


def heldout_psnr(stack, views: ShardViews, held_idx: list[int], boxes, cfg: FarmConfig,
                 device) -> np.ndarray:
    """Mean over held-out views of each view's PSNR, rendered on black (targets composited
    on black with their alpha)."""
    rgb, target = render_heldout(stack, views, held_idx, boxes, cfg, device)
    mse = ((rgb - target) ** 2).mean(dim=(-1, -2, -3))           # [B, Vh]
    return (-10.0 * torch.log10(mse)).mean(-1).numpy().astype(np.float32)


def render_heldout(stack, views: ShardViews, held_idx: list[int], boxes, cfg: FarmConfig, device):
    """Rendered and ground-truth held-out images on black, each [B, Vh, H, W, 3] (CPU)."""
    B, _, H, W, _ = views.images.shape
    jj, ii = torch.meshgrid(torch.arange(W) + 0.5, torch.arange(H) + 0.5, indexing="xy")
    uv = torch.stack([jj, ii], -1)
    c2w = torch.from_numpy(views.c2w[:, held_idx])[:, :, None, None]
    intr = torch.from_numpy(views.intrinsics[:, held_idx])[:, :, None, None]
    origins, dirs = pixel_rays(c2w, intr, uv)
    n = len(held_idx) * H * W
    origins, dirs = origins.reshape(B, n, 3).to(device), dirs.reshape(B, n, 3).to(device)
    # only rays that meet a NeRF's box can differ from black: render those, hit rays first
    hit = ray_box_intersect(origins, dirs, boxes[:, None, 0], boxes[:, None, 1])[2]
    counts = hit.sum(1)
    order = torch.argsort((~hit).to(torch.uint8), dim=1, stable=True)[:, :max(int(counts.max()), 1)]
    take = lambda t: torch.gather(t, 1, order[..., None].expand(-1, -1, 3))
    with autocast(device, cfg.precision):
        out = render_pixels(stack, take(origins), take(dirs), boxes, cfg.eval_samples_per_ray,
                            torch.zeros(3, device=device),
                            rays_per_call=max(1, cfg.points_per_call // (B * cfg.eval_samples_per_ray)))
    valid = torch.arange(order.shape[1], device=device)[None] < counts[:, None]
    rgb = torch.zeros(B, n, 3, device=device)
    rgb.scatter_(1, order[..., None].expand(-1, -1, 3), out.rgb.float() * valid[..., None])
    rgba = torch.from_numpy(views.images[:, held_idx]).float() / 255.0
    target = rgba[..., :3] * rgba[..., 3:]
    return rgb.cpu().reshape(B, len(held_idx), H, W, 3), target


def _failures(object_ids, arch, failed_step, diverged, psnr, floor) -> list[dict]:
    """Failed NeRFs with the first reason that holds: non-finite loss, divergence
    (:func:`nfws.divergence.divergence_reasons`), held-out PSNR non-finite or below
    the floor."""
    out = []
    for b, oid in enumerate(object_ids):
        if failed_step[b] >= 0:
            reason = f"non-finite loss at step {int(failed_step[b])}"
        elif diverged[b] is not None:
            reason = f"diverged: {diverged[b]}"
        elif not np.isfinite(psnr[b]):
            reason = "non-finite held-out PSNR"
        elif psnr[b] < floor:
            reason = f"held-out PSNR {psnr[b]:.2f} dB below psnr_floor {floor}"
        else:
            continue
        out.append({"object_id": oid, "arch": arch, "reason": reason})
    return out


def _progress(state, stack, optimiser, streams, estimators, cells) -> dict:
    return {**state, "params": {k: v.detach() for k, v in stack.params.items()},
            "optimiser": optimiser.state_dict(), "streams": streams.state_dict(),
            "occupancy": [e.state_dict() for e in estimators] if estimators else [],
            "cells": cells.state_dict() if cells is not None else {}}


def _restore(ck, stack, optimiser, streams, estimators, cells) -> dict:
    with torch.no_grad():
        for k, v in ck["params"].items():
            stack.params[k].copy_(v)
    optimiser.load_state_dict(ck["optimiser"])
    streams.load_state_dict(ck["streams"])
    for est, sd in zip(estimators or [], ck["occupancy"]):
        est.load_state_dict(sd)
    if cells is not None:
        cells.load_state_dict(ck["cells"])
    return {k: ck[k] for k in ("step", "loss_acc", "loss_curve", "failed_step")}


def train_shard(views_store, object_ids: list[str], spec: ArchSpec, cfg: dict, out_path,
                device, seed: int, checkpoint_dir) -> dict:
    """Train the NeRFs of ``object_ids`` (one shard) and write the NeRF shard zarr.

    Reads ``views_store`` (views.zarr); writes ``out_path`` atomically (arrays of
    ``spec.param_shapes()`` + object_ids, psnr, loss_curve, sample_box; attrs arch,
    config_hash, dropped); checkpoints to ``checkpoint_dir/<shard>.ckpt.pt`` every
    ``checkpoint_every`` steps and resumes from it. Failed NeRFs (non-finite loss, PSNR
    under ``psnr_floor``) raise unless ``on_failure: drop``. Returns a summary dict.
    """
    farm_cfg = FarmConfig.from_dict(cfg)
    if len(set(object_ids)) != len(object_ids) or not object_ids:
        raise ValueError(f"{out_path}: object_ids must be non-empty and unique")
    out_path = Path(out_path)
    checkpoint = Checkpoint(Path(checkpoint_dir) / f"{out_path.stem}.ckpt.pt", {
        "format": CHECKPOINT_FORMAT, "arch": spec.to_dict(), "seed": seed,
        "config_hash": config_hash(asdict(farm_cfg)), "object_ids": list(object_ids),
        "inputs": input_fingerprint([views_store])})
    views = load_views(views_store, list(object_ids))
    try:
        result = fit_stack(views, spec, farm_cfg, device, seed, checkpoint)
    except torch.cuda.OutOfMemoryError as err:
        raise RuntimeError(
            f"{out_path}: CUDA out of memory training {len(object_ids)} {spec.name} NeRFs at "
            f"once; lower nerf.shard_size (this shard has {len(object_ids)}) or "
            f"nerf.fit.points_per_call ({farm_cfg.points_per_call})") from err
    failed = {f["object_id"] for f in result.failures}
    if failed and farm_cfg.on_failure != "drop":
        lines = "; ".join(f"{f['object_id']} ({f['arch']}): {f['reason']}" for f in result.failures)
        raise RuntimeError(f"{out_path}: {len(failed)} NeRF(s) failed: {lines}")
    keep = [b for b, oid in enumerate(object_ids) if oid not in failed]
    if not keep:
        raise RuntimeError(f"{out_path}: every NeRF of the shard failed: {result.failures}")
    write_nerf_shard(NerfShard(
        out_path, spec, [object_ids[b] for b in keep],
        {name: a[keep] for name, a in result.stack.state_arrays().items()},
        psnr=result.psnr[keep], loss_curve=result.loss_curve[keep].astype(np.float32),
        sample_box=result.boxes.numpy()[keep].astype(np.float32),
        config_hash=config_hash(asdict(farm_cfg)),
        dropped=[{"object_id": f["object_id"], "reason": f["reason"]} for f in result.failures],
        heldout_views=list(farm_cfg.heldout_views), seed=seed))
    checkpoint.clear()
    return {"n_trained": len(keep), "n_dropped": len(failed),
            "median_psnr": float(np.median(result.psnr[keep])),
            "train_seconds": result.train_seconds}
