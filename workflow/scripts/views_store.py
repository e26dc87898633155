"""Rule views_store (workflow/rules/data.smk): nfws.data.jobs.views_store."""
from nfws.data.jobs import views_store

views_store(snakemake)  # noqa: F821 (Snakemake defines it)
