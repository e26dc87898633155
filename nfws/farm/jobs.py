"""The NeRF farm's jobs: one function per rule of ``workflow/rules/farm.smk``, each called
with the rule's ``snakemake`` object by the script of the same name.

A job function unpacks the rule's inputs and params, sets the job up (log, threads, seed,
device) and calls the library: batched training (:mod:`nfws.farm.train`), the summary
table (:mod:`nfws.farm.evaluate`) and the preview sheets (:mod:`nfws.farm.previews`).
"""
from __future__ import annotations

from nfws.device import job_device
from nfws.runlog import script_setup


def train_nerfs(smk) -> None:
    """One shard of NeRFs of one architecture, trained at once."""
    from nfws.farm.train import train_shard
    from nfws.fields.spec import ArchSpec

    p = smk.params
    with script_setup(smk, p.seed), job_device(p.device, p.lock_dir) as device:
        train_shard(smk.input.views, list(p.members), ArchSpec.from_dict(smk.wildcards.arch, p.arch),
                    p.fit, smk.output[0], device, p.seed, p.checkpoints)


def nerf_previews(smk) -> None:
    """Ground truth beside the renders of a few of an architecture's NeRFs."""
    from nfws.farm.previews import nerf_previews as previews

    with script_setup(smk):
        previews(smk.input.shard, smk.input.views, smk.output[0], smk.params.fit,
                 **smk.params.previews)


def nerf_table(smk) -> None:
    """Per architecture: NeRFs kept and dropped, held-out PSNR."""
    from nfws.farm.evaluate import nerf_table as table

    with script_setup(smk):
        table(smk.params.shards, smk.output.csv, smk.output.md)
