"""Rule train_encoder (workflow/rules/gmn.smk): nfws.gmn.jobs.train_encoder."""
from nfws.gmn.jobs import train_encoder

train_encoder(snakemake)  # noqa: F821 (Snakemake defines it)
