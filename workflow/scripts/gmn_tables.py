"""Rule gmn_tables (workflow/rules/gmn.smk): nfws.gmn.jobs.gmn_tables."""
from nfws.gmn.jobs import gmn_tables

gmn_tables(snakemake)  # noqa: F821 (Snakemake defines it)
