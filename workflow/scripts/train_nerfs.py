"""NeRF farm job: train one shard of NeRFs of one architecture."""
from nfws.device import job_device
from nfws.fields.spec import ArchSpec
from nfws.fit.farm import train_shard
from nfws.runlog import script_setup

p = snakemake.params
with script_setup(snakemake, p.seed), job_device(p.device, p.lock_dir) as device:
    train_shard(snakemake.input.views, list(p.members),
                ArchSpec.from_dict(snakemake.wildcards.arch, p.arch), p.fit,
                snakemake.output[0], device, p.seed, p.checkpoints)
