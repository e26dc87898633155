"""Rule base_field (workflow/rules/mlora.smk): nfws.mlora.jobs.base_field."""
from nfws.mlora.jobs import base_field

base_field(snakemake)  # noqa: F821 (Snakemake defines it)
