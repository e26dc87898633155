"""Rule base_field_curve (workflow/rules/mlora.smk): nfws.mlora.jobs.base_field_curve."""
from nfws.mlora.jobs import base_field_curve

base_field_curve(snakemake)  # noqa: F821 (Snakemake defines it)
