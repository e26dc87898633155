"""Held-out reconstruction, NT-Xent, rotation error, retrieval and class probe of SANE."""
from pathlib import Path

from nfws.device import job_device
from nfws.runlog import script_setup
from nfws.sane.evaluate import evaluate_sane

p, i = snakemake.params, snakemake.input
with script_setup(snakemake, p.seed), job_device(p.device, p.lock_dir) as device:
    shards = sorted(str(s) for s in Path(i.nerfs).glob("*.zarr"))
    evaluate_sane(i.model, shards, i.manifest, p.sane, Path(snakemake.output.table).parent,
                  p.seed, device)
