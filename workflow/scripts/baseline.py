"""A Table-5 baseline encoder: train, embed, classify."""
from pathlib import Path

from nfws.device import job_device
from nfws.runlog import script_setup
from nfws.stages.gmn import run_baseline
from nfws.store import group_by_parent

p, i = snakemake.params, snakemake.input
with script_setup(snakemake, p.seed), job_device(p.device, p.lock_dir) as device:
    run_baseline(snakemake.wildcards.baseline, group_by_parent(i.nerfs), i.views, i.manifest,
                 p.gmn, p.classifier, p.seed, Path(snakemake.output.model).parent, device)
