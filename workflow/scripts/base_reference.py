"""Rule base_reference (workflow/rules/mlora.smk): nfws.mlora.jobs.base_reference."""
from nfws.mlora.jobs import base_reference

base_reference(snakemake)  # noqa: F821 (Snakemake defines it)
