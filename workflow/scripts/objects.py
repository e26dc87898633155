"""Rule objects (workflow/rules/data.smk): nfws.data.jobs.objects."""
from nfws.data.jobs import objects

objects(snakemake)  # noqa: F821 (Snakemake defines it)
