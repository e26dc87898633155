"""The feature extractor of the generation metrics, trained on the reference data."""
from nfws.device import job_device
from nfws.runlog import script_setup
from nfws.stages.lora import train_extractor

p, i = snakemake.params, snakemake.input
with script_setup(snakemake, p.seed), job_device(p.device, p.lock_dir) as device:
    train_extractor(i.targets, i.manifest, p.extractor, p.seed, snakemake.output[0], device)
