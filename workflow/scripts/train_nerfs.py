"""Rule train_nerfs (workflow/rules/farm.smk): nfws.farm.jobs.train_nerfs."""
from nfws.farm.jobs import train_nerfs

train_nerfs(snakemake)  # noqa: F821 (Snakemake defines it)
