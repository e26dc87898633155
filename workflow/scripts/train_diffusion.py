"""DDPM over the fitted weights of one representation (or the encoder ablation)."""
from nfws.device import job_device
from nfws.runlog import script_setup
from nfws.stages.lora import train_weight_diffusion

p, i = snakemake.params, snakemake.input
with script_setup(snakemake, p.seed), job_device(p.device, p.lock_dir) as device:
    train_weight_diffusion(snakemake.wildcards.variant, i.shards, i.manifest, p.model, p.seed,
                           snakemake.output[0], device)
