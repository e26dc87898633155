"""The base field's reference rows: training latents and latent-only fits of the test split."""
from nfws.device import job_device
from nfws.runlog import script_setup
from nfws.stages.lora import base_reference

p = snakemake.params
with script_setup(snakemake, p.seed), job_device(p.device, p.lock_dir) as device:
    base_reference(snakemake.input.base, snakemake.input.targets, p.fit, p.base, p.seed,
                   snakemake.output[0], device)
