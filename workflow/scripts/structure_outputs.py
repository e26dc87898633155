"""Rule structure_outputs (workflow/rules/mlora.smk): nfws.mlora.jobs.structure_outputs."""
from nfws.mlora.jobs import structure_outputs

structure_outputs(snakemake)  # noqa: F821 (Snakemake defines it)
