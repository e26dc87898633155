"""Rule weight_structure (workflow/rules/mlora.smk): nfws.mlora.jobs.weight_structure."""
from nfws.mlora.jobs import weight_structure

weight_structure(snakemake)  # noqa: F821 (Snakemake defines it)
