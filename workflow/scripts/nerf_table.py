"""Rule nerf_table (workflow/rules/farm.smk): nfws.farm.jobs.nerf_table."""
from nfws.farm.jobs import nerf_table

nerf_table(snakemake)  # noqa: F821 (Snakemake defines it)
