"""The frozen modulated base field, trained as an auto-decoder."""
from nfws.device import job_device
from nfws.fit.base_field import train_base_field
from nfws.runlog import script_setup

p = snakemake.params
with script_setup(snakemake, p.seed), job_device(p.device, p.lock_dir) as device:
    train_base_field(snakemake.input[0], p.base, snakemake.output[0], p.seed, device=device)
