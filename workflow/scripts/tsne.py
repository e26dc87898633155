"""Rule tsne (workflow/rules/gmn.smk): nfws.gmn.jobs.tsne."""
from nfws.gmn.jobs import tsne

tsne(snakemake)  # noqa: F821 (Snakemake defines it)
