"""Rule train_sane (workflow/rules/sane.smk): nfws.sane.jobs.train_sane."""
from nfws.sane.jobs import train_sane

train_sane(snakemake)  # noqa: F821 (Snakemake defines it)
