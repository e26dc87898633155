"""Fit one representation to one shard of instances (batched)."""
from nfws.device import job_device
from nfws.fit.instances import fit_instances
from nfws.runlog import script_setup

p, w = snakemake.params, snakemake.wildcards
with script_setup(snakemake, p.seed), job_device(p.device, p.lock_dir) as device:
    fit_instances(w.repr, snakemake.input.base, snakemake.input.targets, p.fit["fit"],
                  snakemake.output[0], p.seed, shard=int(w.shard), n_shards=p.fit["n_shards"],
                  device=device, base_cfg=p.base)
