"""Rule baseline (workflow/rules/gmn.smk): nfws.gmn.jobs.baseline."""
from nfws.gmn.jobs import baseline

baseline(snakemake)  # noqa: F821 (Snakemake defines it)
