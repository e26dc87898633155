"""Rule fit_instances (workflow/rules/mlora.smk): nfws.mlora.jobs.fit_instances."""
from nfws.mlora.jobs import fit_instances

fit_instances(snakemake)  # noqa: F821 (Snakemake defines it)
