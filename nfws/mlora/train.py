"""Batched per-instance fitting of the six weight representations (paper §3.1, §8.1).

All instances of a shard are fitted at once: parameters are stacked [B, ...], one Adam
optimises them, and the loss is the sum of per-instance losses. Adam is elementwise and
instance i's parameters only receive the gradient of loss i, so this equals fitting each
instance alone (``tests/unit/mlora/test_train.py`` checks it). Each instance draws its points from
its own generator seeded by (seed, instance index), so results do not depend on the shard
layout. The learning rate follows a cosine from ``lr_start`` to ``lr_end``.

Initialisation: every instance starts from one shared draw ι (seeded). For the standalone
MLP with ``mlp_template_init`` (single-category runs, HyperDiffusion's "first weights"
trick) the first training-split instance of the dataset is fitted first and every instance
starts from its weights, so no held-out object shapes the training weights.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from nfws.config_files import Section
from nfws.data.targets import load_targets, sample_batch, training_indices
from nfws.metrics import reconstruction_scores
from nfws.device import choose_device
from nfws.mlora.base_field import load_base
from nfws.divergence import ON_FAILURE, divergence_reasons
from nfws.mlora.models import DISPLAY_NAMES, Representation, build_representation
from nfws.checkpoint import Checkpoint, input_fingerprint, tensor_digest
from nfws.mlora.weight_shard import WeightShard, read_weight_shards, write_weight_shard
from nfws.store import config_hash


@dataclass(frozen=True)
class FitLoop(Section):
    """The ``lora.fit`` keys of the instance-fitting loop."""

    SECTION = "lora.fit"
    steps: int
    points: int
    lr_start: float
    lr_end: float
    log_every: int
    checkpoint_every: int
    base_latent: str
    mlp_template_init: bool


@dataclass(frozen=True)
class FailurePolicy(Section):
    """The ``lora.fit`` keys that judge a diverged fit (:mod:`nfws.divergence`)."""

    SECTION = "lora.fit"
    max_weight_growth: float
    on_failure: str

    def check(self, section: str) -> None:
        if self.on_failure not in ON_FAILURE:
            self.bad(section, "on_failure", f"must be one of {ON_FAILURE}")


def cosine_lr(step: int, total: int, lr_start: float, lr_end: float) -> float:
    return lr_end + 0.5 * (lr_start - lr_end) * (1 + math.cos(math.pi * step / max(total, 1)))


def make_representation(kind: str, base_ckpt, targets, cfg: dict,
                        base_cfg: dict | None = None) -> Representation:
    """Build ``kind`` for the targets' coordinate / output sizes (base loaded if LoRA; a
    base file of other targets, or of another config than ``base_cfg``, is refused)."""
    base = None if kind.startswith("mlp") else load_base(base_ckpt, cfg["base_latent"],
                                                         base_cfg, targets)
    return build_representation(kind, cfg, targets.coord_dim, targets.out_dim, base)


def shared_init(rep: Representation, n: int, seed: int) -> dict[str, torch.Tensor]:
    """One initialisation ι drawn from ``seed``, repeated for n instances."""
    codes = rep.draw_codes(1, torch.Generator().manual_seed(seed))
    return {k: v.expand(n, *v.shape[1:]).clone() for k, v in rep.init(codes).items()}


def fit_checkpoint(out_path, rep: Representation, params0: dict, indices, cfg: dict, seed: int,
                   targets, base_ckpt) -> Checkpoint:
    """The progress file of the :func:`fit_params` call behind ``out_path``, tagged with all that fit depends
    on: kind, config, seed, instances, starting weights and the files read (the targets,
    and the base field for LoRA kinds)."""
    inputs = [targets] if rep.kind.startswith("mlp") else [targets, base_ckpt]
    return Checkpoint.beside(out_path, {
        "kind": rep.kind, "config_hash": config_hash(cfg), "seed": seed,
        "indices": [int(i) for i in indices], "start": tensor_digest(params0),
        "inputs": input_fingerprint(inputs)})


def instance_generators(seed: int, indices) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed * 1_000_003 + int(i)) for i in indices]


def fit_params(rep: Representation, params0: dict, targets, indices, cfg: dict, seed: int,
               device, checkpoint: Checkpoint | None = None, desc: str = "fit",
               stop_on_nonfinite: bool = True) -> tuple[dict, np.ndarray]:
    """Fit ``params0`` ([B, ...] per tensor) to the instances ``indices``.

    Returns the fitted (masked) parameters on CPU and the loss curve [B, n_logged] (the
    first value is the starting loss). A non-finite loss raises, naming the instances,
    unless ``stop_on_nonfinite`` is off: then the others go on (each instance's weights
    only see its own loss) and the curve keeps the non-finite values. With a
    ``checkpoint`` (:func:`fit_checkpoint`) the state is saved every ``checkpoint_every``
    steps and a rerun of the same fit resumes from it.
    """
    loop = FitLoop.pick(cfg)
    indices = [int(i) for i in indices]
    rep.to(device)
    params = {k: v.detach().clone().to(device).requires_grad_(True) for k, v in params0.items()}
    opt = torch.optim.Adam(list(params.values()), lr=loop.lr_start)
    gens = instance_generators(seed, indices)
    steps, step0, curve = int(loop.steps), 0, []
    ck = checkpoint.load(device) if checkpoint is not None else None
    if ck is not None:
        with torch.no_grad():
            for k in params:
                params[k].copy_(ck["params"][k])
        opt.load_state_dict(ck["opt"])
        for g, state in zip(gens, ck["gens"]):
            g.set_state(state)
        step0, curve = ck["step"], list(ck["curve"].T)
    bar = tqdm(total=steps, initial=step0, desc=desc, leave=False)
    for step in range(step0, steps):
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, steps, loop.lr_start, loop.lr_end)
        points, values = sample_batch(targets, indices, int(loop.points), gens)
        losses = targets.loss(rep.forward(params, points.to(device)), values.to(device))
        if stop_on_nonfinite and not torch.isfinite(losses).all():
            bad = [str(targets.object_ids[indices[b]])
                   for b in torch.nonzero(~torch.isfinite(losses)).flatten().tolist()]
            raise FloatingPointError(f"{rep.kind}: non-finite loss at step {step} for {bad}")
        opt.zero_grad(set_to_none=True)
        losses.sum().backward()
        opt.step()
        if step % loop.log_every == 0 or step == steps - 1:
            curve.append(losses.detach().cpu())
        bar.update(1)
        if (checkpoint is not None and (step + 1) % loop.checkpoint_every == 0
                and step + 1 < steps):
            checkpoint.save({"step": step + 1, "params": {k: v.detach() for k, v in params.items()},
                             "opt": opt.state_dict(), "gens": [g.get_state() for g in gens],
                             "curve": torch.stack(curve, 1)})
    bar.close()
    fitted = {k: v.detach().cpu() for k, v in rep.apply_mask(params).items()}
    rep.to("cpu")
    return fitted, torch.stack(curve, 1).numpy()


def template_index(targets) -> int:
    """The instance the MLP template is fitted to: the first of the train split (the first
    instance when the targets store records no splits)."""
    return int(training_indices(targets, "targets (MLP template)")[0])


def starting_params(rep: Representation, targets, n: int, cfg: dict, seed: int,
                    device) -> tuple[dict, str | None]:
    """Shared start for n instances: seeded ι, or the fitted template (MLP trick)."""
    params = shared_init(rep, n, seed)
    if not (rep.kind.startswith("mlp") and FitLoop.pick(cfg).mlp_template_init):
        return params, None
    first = template_index(targets)
    template, _ = fit_params(rep, shared_init(rep, 1, seed), targets, [first], cfg, seed,
                             device, desc="template")
    return {k: v.expand(n, *v.shape[1:]).clone() for k, v in template.items()}, \
        str(targets.object_ids[first])


def fit_instances(kind: str, base_ckpt, targets, cfg: dict, out_path, seed: int,
                  shard: int = 0, n_shards: int = 1, device=None,
                  base_cfg: dict | None = None) -> dict:
    """Fit representation ``kind`` to shard ``shard`` of ``n_shards`` of a targets store.

    Reads ``targets`` (targets.zarr path) and ``base_ckpt`` (base.pt; unused for MLP
    kinds; refused when written for other targets or, given ``base_cfg`` (this run's
    ``lora.base`` section), under another config). Writes the weight shard ``out_path``
    (:mod:`nfws.mlora.weight_shard`; its base_config is checked again when ``load_fitted``
    reloads the base). Resumable through ``out_path``.progress.pt.
    """
    device = device or choose_device("auto")
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} out of range for n_shards={n_shards}")
    policy = FailurePolicy.pick(cfg)
    data = load_targets(targets)
    rep = make_representation(kind, base_ckpt, data, cfg, base_cfg)
    indices = list(range(shard, len(data), n_shards))
    if not indices:
        raise ValueError(f"{targets}: shard {shard}/{n_shards} has no instances")
    start, template_id = starting_params(rep, data, len(indices), cfg, seed, device)
    checkpoint = fit_checkpoint(out_path, rep, start, indices, cfg, seed, targets, base_ckpt)
    fitted, curve = fit_params(rep, start, data, indices, cfg, seed, device, checkpoint,
                               desc=f"fit {kind}", stop_on_nonfinite=policy.on_failure != "drop")
    dropped = diverged_instances(data.object_ids[indices], curve, start, fitted, cfg, out_path)
    keep = [b for b, oid in enumerate(data.object_ids[indices]) if str(oid) not in dropped]
    fitted, curve, indices = {k: v[keep] for k, v in fitted.items()}, curve[keep], \
        [indices[b] for b in keep]
    rep.to(device)
    on_device = {k: v.to(device) for k, v in fitted.items()}
    scores = reconstruction_scores(lambda p: rep.forward(on_device, p), indices, data, cfg,
                                   seed, device)
    rep.to("cpu")
    write_weight_shard(out_path, WeightShard(
        weights=rep.flatten(fitted).numpy().astype(np.float32),
        frozen=rep.frozen_flat().numpy().astype(np.uint8),
        object_ids=data.object_ids[indices], labels=data.labels[indices],
        score=scores.astype(np.float32), loss_curve=curve.astype(np.float32),
        attrs={"kind": kind, "display_name": DISPLAY_NAMES[kind], "layout": rep.layout(),
               "n_params": rep.n_params, "n_trainable": rep.n_trainable,
               "metric": "psnr_db" if data.kind == "image" else "chamfer",
               "target_kind": data.kind, "coord_dim": data.coord_dim,
               "out_dim": data.out_dim, "class_names": data.class_names,
               "fit": cfg, "config_hash": config_hash(cfg), "seed": seed,
               "shard": shard, "n_shards": n_shards, "base_ckpt": str(base_ckpt),
               "base_config": None if kind.startswith("mlp") else base_cfg,
               "template_object_id": template_id,
               "dropped": [{"object_id": oid, "reason": why} for oid, why in dropped.items()]}))
    checkpoint.clear()
    return {"kind": kind, "n": len(indices), "n_dropped": len(dropped), "n_params": rep.n_params,
            "n_trainable": rep.n_trainable, "score_mean": float(np.nanmean(scores))}


def diverged_instances(object_ids, curve, start: dict, fitted: dict, cfg: dict,
                       out_path) -> dict[str, str]:
    """{object_id: reason} of the diverged instances (:mod:`nfws.divergence`); any
    raises, naming them, unless ``on_failure`` is ``drop``."""
    policy = FailurePolicy.pick(cfg)
    reasons = divergence_reasons(curve, start, fitted, float(policy.max_weight_growth))
    dropped = {str(oid): why for oid, why in zip(object_ids, reasons) if why is not None}
    if dropped and policy.on_failure != "drop":
        raise RuntimeError(f"{out_path}: {len(dropped)} instance fit(s) diverged: "
                           + "; ".join(f"{oid}: {why}" for oid, why in dropped.items()))
    if len(dropped) == len(object_ids):
        raise RuntimeError(f"{out_path}: every instance fit diverged: {dropped}")
    return dropped


def load_fitted(store_paths, base_ckpt=None) -> tuple[Representation, torch.Tensor, WeightShard]:
    """Representation (to decode weights into fields), weights [n, P] and the shards read as
    one (:func:`nfws.mlora.weight_shard.read_weight_shards`)."""
    shard = read_weight_shards(store_paths)
    attrs = shard.attrs
    base = None
    if not attrs["kind"].startswith("mlp"):  # refused if retrained under another config
        base = load_base(base_ckpt or attrs["base_ckpt"], attrs["fit"]["base_latent"],
                         attrs["base_config"])
    rep = build_representation(attrs["kind"], attrs["fit"], attrs["coord_dim"],
                               attrs["out_dim"], base)
    return rep, torch.from_numpy(shard.weights), shard
