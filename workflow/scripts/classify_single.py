"""Rule classify_single (workflow/rules/gmn.smk): nfws.gmn.jobs.classify_single."""
from nfws.gmn.jobs import classify_single

classify_single(snakemake)  # noqa: F821 (Snakemake defines it)
