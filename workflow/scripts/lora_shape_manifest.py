"""Rule lora_shape_manifest (workflow/rules/mlora.smk): nfws.mlora.jobs.lora_shape_manifest."""
from nfws.mlora.jobs import lora_shape_manifest

lora_shape_manifest(snakemake)  # noqa: F821 (Snakemake defines it)
