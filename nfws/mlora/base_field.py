"""Auto-decoder training of the modulated base field (paper §3.3, §8.3).

Network weights θ and one latent z_i per training instance are optimised jointly on
recon + λ_r‖z_i‖². The schedule is a list of stages, each with its own steps, batch
(instances per step), points per instance and learning rate: early stages use many
instances with few points, late stages few instances with many points, and the learning
rate falls stage by stage (paper: 1e-3 → 1e-5 in 5 stages). An exponential moving average
of θ is what gets saved, with a snapshot of it and of the latents every ``curve_every``
steps and the process CPU seconds spent so far, so that ``nfws.mlora.base_reference`` can
score reconstruction against training cost. Progress checkpoints make the job resumable.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
from tqdm import tqdm

from nfws.config_files import Section
from nfws.data.targets import load_targets, sample_batch, training_indices
from nfws.device import choose_device
from nfws.checkpoint import Checkpoint, input_fingerprint
from nfws.mlora.modulated import ModulatedField
from nfws.store import config_hash, load_torch, save_torch


@dataclass(frozen=True)
class Stage(Section):
    """One stage of the base field's schedule (an entry of ``lora.base.stages``)."""

    steps: int
    batch: int
    points: int
    lr: float

    def check(self, section: str) -> None:
        for key in ("steps", "batch", "points", "lr"):
            if not getattr(self, key) > 0:
                self.bad(section, key, "must be a positive number")


@dataclass(frozen=True)
class BaseSchedule(Section):
    """The ``lora.base`` keys of the base field's training (its shape is ``FieldArch``)."""

    SECTION = "lora.base"
    stages: tuple
    lambda_r: float
    ema_decay: float
    latent_init_std: float
    checkpoint_every: int
    curve_every: int

    def check(self, section: str) -> None:
        if not self.stages:
            self.bad(section, "stages", "needs at least one stage")
        object.__setattr__(self, "stages", tuple(
            Stage.from_dict(st, f"{section}.stages[{i}]") for i, st in enumerate(self.stages)))


def train_base_field(targets_path, cfg: dict, out_path, seed: int, device=None) -> dict:
    """Train the base field on the training instances of ``targets_path``
    (``nfws.data.targets.training_indices``); write ``out_path`` (.pt).

    The checkpoint holds ``cfg`` (architecture), ``train_cfg`` (``cfg`` as given, so
    consumers can refuse a file of another config: :func:`check_base`), ``target_kind``,
    ``state`` (EMA weights), ``latents`` [N_train, d_z], their ``object_ids``,
    ``loss_curve`` (one value per step) and ``snapshots`` (every ``curve_every`` steps and
    at the end: ``step``, ``cpu_seconds`` of training so far, EMA ``state``, ``latents``).
    Returns a summary.
    """
    run = BaseSchedule.pick(cfg)
    device = device or choose_device("auto")
    targets = load_targets(targets_path)
    train = torch.from_numpy(training_indices(targets, targets_path))
    arch = {**cfg, "coord_dim": targets.coord_dim, "out_dim": targets.out_dim}
    torch.manual_seed(seed)  # module initialisers draw from the global generator
    model = ModulatedField(arch).to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    gen = torch.Generator().manual_seed(seed)
    latents = (torch.randn(len(train), model.cfg["d_z"], generator=gen)
               * run.latent_init_std).to(device).requires_grad_(True)
    opt = torch.optim.Adam([{"params": model.parameters()}, {"params": [latents]}],
                           lr=run.stages[0].lr)
    checkpoint = Checkpoint.beside(out_path, {
        "config_hash": config_hash(cfg), "seed": seed, "inputs": input_fingerprint([targets_path]),
        "object_ids": [str(targets.object_ids[i]) for i in train.tolist()]})
    step0, curve, snapshots, seconds0 = 0, [], [], 0.0
    ck = checkpoint.load(device)
    if ck is not None:
        model.load_state_dict(ck["model"]), ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"]), gen.set_state(ck["gen"])
        with torch.no_grad():
            latents.copy_(ck["latents"])
        step0, curve = ck["step"], ck["loss_curve"].tolist()
        snapshots, seconds0 = ck["snapshots"], float(ck["cpu_seconds"])
    clock = time.process_time()
    cpu_seconds = lambda: seconds0 + time.process_time() - clock
    schedule = [(s, st) for st in run.stages for s in range(int(st.steps))]
    bar = tqdm(total=len(schedule), initial=step0, desc="base field")
    for step in range(step0, len(schedule)):
        _, stage = schedule[step]
        for group in opt.param_groups:
            group["lr"] = stage.lr
        batch = min(int(stage.batch), len(train))
        idx = torch.randperm(len(train), generator=gen)[:batch]
        points, values = sample_batch(targets, train[idx], int(stage.points), [gen] * batch)
        z = latents[idx.to(device)]
        pred = model(points.to(device), z)
        recon = targets.loss(pred, values.to(device)).mean()
        loss = recon + run.lambda_r * z.pow(2).sum(-1).mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"base field ({targets_path}): loss {loss.item()} "
                                     f"at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), model.parameters()):
                pe.lerp_(p, 1 - run.ema_decay)
        curve.append(recon.item())
        bar.update(1)
        bar.set_postfix(recon=f"{curve[-1]:.4f}")
        if (step + 1) % run.curve_every == 0 or step + 1 == len(schedule):
            snapshots.append(snapshot(ema, latents, step + 1, cpu_seconds()))
        if (step + 1) % run.checkpoint_every == 0 and step + 1 < len(schedule):
            checkpoint.save({"model": model.state_dict(), "ema": ema.state_dict(),
                             "opt": opt.state_dict(), "gen": gen.get_state(),
                             "latents": latents.detach(), "step": step + 1,
                             "loss_curve": torch.tensor(curve), "snapshots": snapshots,
                             "cpu_seconds": cpu_seconds()})
    bar.close()
    save_torch({"cfg": model.cfg, "train_cfg": dict(cfg), "target_kind": targets.kind,
                "state": ema.state_dict(), "latents": latents.detach().cpu(),
                "object_ids": [str(targets.object_ids[i]) for i in train.tolist()],
                "loss_curve": torch.tensor(curve), "snapshots": snapshots}, out_path)
    checkpoint.clear()
    return {"steps": len(schedule), "final_recon": curve[-1] if curve else None,
            "n_params": sum(p.numel() for p in model.parameters())}


def snapshot(ema, latents: torch.Tensor, step: int, cpu_seconds: float) -> dict:
    """The EMA weights and latents after ``step`` steps and ``cpu_seconds`` of training."""
    return {"step": step, "cpu_seconds": cpu_seconds,
            "state": {k: v.detach().cpu().clone() for k, v in ema.state_dict().items()},
            "latents": latents.detach().cpu().clone()}


def check_base(ck: dict, path, expect: dict | None = None, targets=None) -> None:
    """Refuse a base-field file that another config wrote, naming the file and the key.

    ``expect``: this run's base section (``nfws.mlora.config.base_config``), compared key by
    key with the file's ``train_cfg``. ``targets`` (``nfws.data.targets``): the coordinate /
    output sizes and modality must be the file's, and every instance the base field was
    trained on must be among the targets (else it was trained on another dataset).
    """
    if expect is not None:
        if "train_cfg" not in ck:
            raise ValueError(f"{path}: the base field records no config to check against "
                             "(written by an older nfws); rerun base_field")
        stored = ck["train_cfg"]
        differ = sorted(k for k in set(stored) | set(expect) if stored.get(k) != expect.get(k))
        if differ:
            raise ValueError(f"{path}: base field written under another config: " + "; ".join(
                f"{k} = {_short(stored.get(k))} in the file, {_short(expect.get(k))} in this "
                "run's lora.base" for k in differ) + "; rerun base_field")
    if targets is None:
        return
    want = {"coord_dim": targets.coord_dim, "out_dim": targets.out_dim}
    differ = [k for k in want if ck["cfg"][k] != want[k]]
    if ck.get("target_kind", targets.kind) != targets.kind:
        differ.insert(0, "target_kind")
        want["target_kind"] = targets.kind
    if differ:
        raise ValueError(f"{path}: base field written for other targets: " + "; ".join(
            f"{k} = {ck.get(k, ck['cfg'].get(k))!r} in the file, {want[k]!r} for the targets "
            f"({targets.kind})" for k in differ))
    known = {str(o) for o in targets.object_ids}
    foreign = [str(o) for o in ck["object_ids"] if str(o) not in known]
    if foreign:
        raise ValueError(f"{path}: base field written for another dataset: object_ids has "
                         f"{len(foreign)} training instances the targets lack, e.g. {foreign[:3]}")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def load_base(path, latent: str = "mean", expect: dict | None = None, targets=None) -> dict:
    """Frozen base for the adapters: folded weights at the ``latent`` ('mean' | 'zero').

    ``expect`` / ``targets``: refuse a file of another config or dataset (:func:`check_base`).
    Returns weights/biases (per synthesis layer), enc_weight/enc_bias, omega0, n_blocks,
    the ``model`` itself (EMA weights), its ``train_cfg`` (None for older files), its
    training ``snapshots`` and training ``latents`` [N, d_z] with their ``object_ids`` for
    reference evaluations.
    """
    ck = load_torch(path)
    check_base(ck, path, expect, targets)
    model = ModulatedField(ck["cfg"])
    model.load_state_dict(ck["state"])
    model.eval().requires_grad_(False)
    if latent == "mean":
        z = ck["latents"].mean(0)
    elif latent == "zero":
        z = torch.zeros(ck["cfg"]["d_z"])
    else:
        raise ValueError(f"fit.base_latent must be 'mean' or 'zero', got {latent!r}")
    weights, biases = model.folded(z)
    return {"weights": weights, "biases": biases, "latent": z,
            "enc_weight": model.encoder.proj.weight.detach().clone(),
            "enc_bias": model.encoder.proj.bias.detach().clone(),
            "omega0": model.encoder.omega0, "n_blocks": model.n_blocks, "model": model,
            "train_cfg": ck.get("train_cfg"), "snapshots": ck.get("snapshots", []),
            "latents": ck["latents"].float(), "object_ids": [str(o) for o in ck["object_ids"]]}
