"""Rule generate (workflow/rules/mlora.smk): nfws.mlora.jobs.generate."""
from nfws.mlora.jobs import generate

generate(snakemake)  # noqa: F821 (Snakemake defines it)
