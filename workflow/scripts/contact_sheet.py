"""Rule contact_sheet (workflow/rules/data.smk): nfws.data.jobs.contact_sheet."""
from nfws.data.jobs import contact_sheet

contact_sheet(snakemake)  # noqa: F821 (Snakemake defines it)
