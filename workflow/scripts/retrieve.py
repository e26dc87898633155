"""Rule retrieve (workflow/rules/gmn.smk): nfws.gmn.jobs.retrieve."""
from nfws.gmn.jobs import retrieve

retrieve(snakemake)  # noqa: F821 (Snakemake defines it)
