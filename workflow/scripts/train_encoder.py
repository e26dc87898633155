"""Train one GMN encoder (loss, training set) on parameter graphs."""
from nfws.device import job_device
from nfws.runlog import script_setup
from nfws.stages.gmn import train_gmn

p, i, o = snakemake.params, snakemake.input, snakemake.output
with script_setup(snakemake, p.seed), job_device(p.device, p.lock_dir) as device:
    train_gmn(snakemake.wildcards.loss, i.graphs, i.nerfs, i.views, i.manifest, p.gmn, p.seed,
              o.model, p.checkpoint, o.log, device)
