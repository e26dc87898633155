"""Rule classify_all (workflow/rules/gmn.smk): nfws.gmn.jobs.classify_all."""
from nfws.gmn.jobs import classify_all

classify_all(snakemake)  # noqa: F821 (Snakemake defines it)
