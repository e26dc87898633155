"""Rule lora_targets (workflow/rules/mlora.smk): nfws.mlora.jobs.lora_targets."""
from nfws.mlora.jobs import lora_targets

lora_targets(snakemake)  # noqa: F821 (Snakemake defines it)
