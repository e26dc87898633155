"""Rule nerf_previews (workflow/rules/farm.smk): nfws.farm.jobs.nerf_previews."""
from nfws.farm.jobs import nerf_previews

nerf_previews(snakemake)  # noqa: F821 (Snakemake defines it)
