"""Train the SANE transformer autoencoder on hash-grid NeRF tokens."""
from pathlib import Path

from nfws.device import job_device
from nfws.runlog import script_setup
from nfws.sane.train import train_sane

p, i = snakemake.params, snakemake.input
with script_setup(snakemake, p.seed), job_device(p.device, p.lock_dir) as device:
    shards = sorted(str(s) for s in Path(i.nerfs).glob("*.zarr"))
    train_sane(shards, i.manifest, p.sane, snakemake.output[0], p.seed, device)
