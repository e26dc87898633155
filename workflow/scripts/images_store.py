"""Rule images_store (workflow/rules/data.smk): nfws.data.jobs.images_store."""
from nfws.data.jobs import images_store

images_store(snakemake)  # noqa: F821 (Snakemake defines it)
