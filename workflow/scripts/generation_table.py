"""Rule generation_table (workflow/rules/mlora.smk): nfws.mlora.jobs.generation_table."""
from nfws.mlora.jobs import generation_table

generation_table(snakemake)  # noqa: F821 (Snakemake defines it)
