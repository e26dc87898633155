"""Rule lora_tables (workflow/rules/mlora.smk): nfws.mlora.jobs.lora_tables."""
from nfws.mlora.jobs import lora_tables

lora_tables(snakemake)  # noqa: F821 (Snakemake defines it)
