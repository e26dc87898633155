"""Rule embed (workflow/rules/gmn.smk): nfws.gmn.jobs.embed."""
from nfws.gmn.jobs import embed

embed(snakemake)  # noqa: F821 (Snakemake defines it)
