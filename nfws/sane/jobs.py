"""SANE's jobs: one function per rule of ``workflow/rules/sane.smk``, each called with the
rule's ``snakemake`` object by the script of the same name.

A job function unpacks the rule's inputs and params, sets the job up (log, threads, seed,
device) and calls the library: the rotated-object dataset and its NeRFs
(:mod:`nfws.sane.rotations`), training (:mod:`nfws.sane.train`) and evaluation
(:mod:`nfws.sane.evaluate`). Modules are imported when a job runs.
"""
from __future__ import annotations

from pathlib import Path

from nfws.device import job_device
from nfws.runlog import script_setup


def _nerf_shards(directory) -> list[str]:
    return sorted(str(s) for s in Path(directory).glob("*.zarr"))


def sane_dataset(smk) -> None:
    """Views of rotated copies of the objects, and their manifest."""
    from nfws.sane.rotations import build_rotated_dataset

    p, o = smk.params, smk.output
    with script_setup(smk, p.seed):
        build_rotated_dataset(smk.input.manifest, o.views, o.manifest, p.data, p.seed,
                              bbox=p.bbox)


def sane_nerfs(smk) -> None:
    """Hash-grid NeRFs of the rotated objects (``sane.fit`` over ``nerf.fit``)."""
    from nfws.fields.spec import ArchSpec
    from nfws.sane.rotations import fit_rotated_nerfs

    p, i = smk.params, smk.input
    with script_setup(smk, p.seed), job_device(p.device, p.lock_dir) as device:
        fit_rotated_nerfs(i.views, i.manifest, ArchSpec.from_dict("SANE-HASH", p.arch),
                          {**p.nerf_fit, **p.fit},
                          smk.output[0], device, p.seed, shard_size=p.shard_size,
                          checkpoint_dir=p.checkpoints)


def train_sane(smk) -> None:
    """The SANE autoencoder on the training objects' NeRFs."""
    from nfws.sane.train import train_sane as train

    p, i = smk.params, smk.input
    with script_setup(smk, p.seed), job_device(p.device, p.lock_dir) as device:
        train(_nerf_shards(i.nerfs), i.manifest, p.sane, smk.output[0], p.seed, device)


def evaluate_sane(smk) -> None:
    """Losses, rotation errors, probes and t-SNE of a trained SANE model."""
    from nfws.sane.evaluate import evaluate_sane as evaluate

    p, i = smk.params, smk.input
    with script_setup(smk, p.seed), job_device(p.device, p.lock_dir) as device:
        evaluate(i.model, _nerf_shards(i.nerfs), i.manifest, p.sane,
                 Path(smk.output.table).parent, p.seed, device)
