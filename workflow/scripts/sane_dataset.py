"""Rule sane_dataset (workflow/rules/sane.smk): nfws.sane.jobs.sane_dataset."""
from nfws.sane.jobs import sane_dataset

sane_dataset(snakemake)  # noqa: F821 (Snakemake defines it)
