"""The base field's own reconstruction quality: the reference rows of the recon table.

:func:`base_reference` measures three things and writes them to one ``.zarr``
(``read_base_reference`` reads it), each scored by ``nfws.metrics.reconstruction_scores``
exactly as the fitted representations are: the base field at its training latents, a
latent-only fit of every test-split instance (base frozen, the representations' fitting
schedule), and the training curve of the base field's snapshots against CPU seconds.
Definitions: docs/trackb.md, "The base field as the reference row".
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from nfws.data.targets import load_targets
from nfws.device import choose_device
from nfws.mlora.base_field import load_base
from nfws.mlora.modulated import ModulatedField
from nfws.mlora.train import fit_checkpoint, fit_params, shared_init
from nfws.metrics import reconstruction_scores
from nfws.mlora.models import latent_on_base
from nfws.store import config_hash, read_zarr, require_attrs, write_zarr

TEST_SPLIT = "test"


@dataclass(frozen=True)
class BaseReference:
    """The arrays and attrs of a base-reference store (:func:`base_reference` lists them)."""

    train_object_ids: np.ndarray
    train_score: np.ndarray
    test_object_ids: np.ndarray
    test_score: np.ndarray
    test_latents: np.ndarray
    test_loss_curve: np.ndarray
    curve_step: np.ndarray
    curve_cpu_seconds: np.ndarray
    curve_score: np.ndarray
    attrs: dict


ARRAYS = tuple(f.name for f in fields(BaseReference) if f.name != "attrs")
ATTRS = ("metric", "target_kind", "n_params", "n_base_params", "test_split", "start_latent",
         "schedule", "fit", "config_hash", "seed", "base_ckpt")


def write_base_reference(path, ref: BaseReference) -> None:
    """Write ``ref`` (every attr of ``ATTRS`` required)."""
    require_attrs(path, ref.attrs, ATTRS, "base-reference")
    write_zarr(path, {name: getattr(ref, name) for name in ARRAYS}, attrs=ref.attrs)


def read_base_reference(path) -> BaseReference:
    """Read a base-reference store; a missing array or attr is an error naming the file."""
    arrays, attrs = read_zarr(path, list(ARRAYS))
    require_attrs(path, attrs, ATTRS, "base-reference")
    return BaseReference(**arrays, attrs=attrs)


def training_instances(base: dict, targets) -> np.ndarray:
    """Targets indices of the base field's training instances (``load_base``'s
    ``object_ids``, in the order of its ``latents``; ``load_base`` checked they exist)."""
    where = {str(o): i for i, o in enumerate(targets.object_ids)}
    return np.array([where[o] for o in base["object_ids"]])


def split_instances(targets, split: str, where) -> np.ndarray:
    """Indices of the instances of ``split``; none (or no splits recorded) is an error."""
    if targets.splits is None:
        raise ValueError(f"{where}: targets record no splits, so there is no {split!r} "
                         "split to fit latents to")
    idx = np.flatnonzero(targets.splits == split)
    if len(idx) == 0:
        raise ValueError(f"{where}: no instance of the {split!r} split")
    return idx


def training_curve(base: dict, targets, instances: np.ndarray, cfg: dict, seed: int,
                   device) -> dict[str, np.ndarray]:
    """Mean score of every training snapshot of ``base`` (``load_base``) at the latents of
    ``instances`` (targets indices of its first training instances, in latent order)."""
    model = ModulatedField(base["model"].cfg).to(device).eval().requires_grad_(False)
    steps, seconds, scores = [], [], []
    for snap in base["snapshots"]:
        model.load_state_dict(snap["state"])
        z = snap["latents"][:len(instances)].float().to(device)
        score = reconstruction_scores(lambda p: model(p, z), instances, targets, cfg, seed, device)
        steps.append(snap["step"]), seconds.append(snap["cpu_seconds"])
        scores.append(float(np.nanmean(score)))
    return {"curve_step": np.array(steps, np.int64),
            "curve_cpu_seconds": np.array(seconds, np.float32),
            "curve_score": np.array(scores, np.float32)}


def base_reference(base_ckpt, targets_path, cfg: dict, out_path, seed: int,
                   device=None, base_cfg: dict | None = None) -> dict:
    """Measure the base field (module doc) and write ``out_path`` (.zarr); a base file of
    other targets or of another config than ``base_cfg`` is refused.

    Arrays: ``train_object_ids`` / ``train_score`` (training latents), ``test_object_ids``
    / ``test_score`` / ``test_latents`` [n, d_z] / ``test_loss_curve`` (latent-only fit),
    ``curve_step`` / ``curve_cpu_seconds`` / ``curve_score`` (the training curve, mean
    score per snapshot). Attrs: metric, n_params
    (d_z, the per-instance entries), n_base_params (the shared frozen base), the fit
    schedule, seed. Resumable through ``out_path``.progress.pt.
    """
    device = device or choose_device("auto")
    targets = load_targets(targets_path)
    base = load_base(base_ckpt, cfg["base_latent"], base_cfg, targets)
    model = base["model"].to(device)
    train_idx = training_instances(base, targets)
    test_idx = split_instances(targets, TEST_SPLIT, targets_path)
    train_score = np.concatenate([  # in groups no larger than the latent fit's batch
        reconstruction_scores(lambda p, z=base["latents"][g].to(device): model(p, z),
                              train_idx[g], targets, cfg, seed, device)
        for g in np.array_split(np.arange(len(train_idx)),
                                math.ceil(len(train_idx) / len(test_idx)))])

    curve = training_curve(base, targets, train_idx[:len(test_idx)], cfg, seed, device)
    rep = latent_on_base(model.cpu(), base["latent"])
    start = shared_init(rep, len(test_idx), seed)
    checkpoint = fit_checkpoint(out_path, rep, start, test_idx, cfg,
                                seed, targets_path, base_ckpt)
    fitted, fit_curve = fit_params(rep, start, targets, test_idx, cfg, seed, device,
                                   checkpoint, desc="latent-only fit")
    rep.to(device)
    z_test = fitted["z"].to(device)
    test_score = reconstruction_scores(lambda p: rep.forward({"z": z_test}, p), test_idx,
                                       targets, cfg, seed, device)
    rep.to("cpu")
    n_base = sum(p.numel() for p in model.parameters())
    write_base_reference(out_path, BaseReference(
        train_object_ids=targets.object_ids[train_idx],
        train_score=train_score.astype(np.float32),
        test_object_ids=targets.object_ids[test_idx],
        test_score=test_score.astype(np.float32),
        test_latents=fitted["z"].numpy().astype(np.float32),
        test_loss_curve=fit_curve.astype(np.float32), **curve,
        attrs={"metric": "psnr_db" if targets.kind == "image" else "chamfer",
               "target_kind": targets.kind, "n_params": rep.n_params,
               "n_base_params": n_base, "test_split": TEST_SPLIT,
               "start_latent": cfg["base_latent"],
               "schedule": {k: cfg[k] for k in ("steps", "points", "lr_start", "lr_end")},
               "fit": cfg, "config_hash": config_hash(cfg), "seed": seed,
               "base_ckpt": str(base_ckpt)}))
    checkpoint.clear()
    return {"n_train": len(train_idx), "n_test": len(test_idx),
            "train_score_mean": float(np.nanmean(train_score)),
            "test_score_mean": float(np.nanmean(test_score))}
