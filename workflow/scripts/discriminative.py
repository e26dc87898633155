"""Rule discriminative (workflow/rules/mlora.smk): nfws.mlora.jobs.discriminative."""
from nfws.mlora.jobs import discriminative

discriminative(snakemake)  # noqa: F821 (Snakemake defines it)
