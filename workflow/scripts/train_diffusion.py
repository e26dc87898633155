"""Rule train_diffusion (workflow/rules/mlora.smk): nfws.mlora.jobs.train_diffusion."""
from nfws.mlora.jobs import train_diffusion

train_diffusion(snakemake)  # noqa: F821 (Snakemake defines it)
