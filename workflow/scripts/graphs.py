"""Rule graphs (workflow/rules/gmn.smk): nfws.gmn.jobs.graphs."""
from nfws.gmn.jobs import graphs

graphs(snakemake)  # noqa: F821 (Snakemake defines it)
