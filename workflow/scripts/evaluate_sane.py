"""Rule evaluate_sane (workflow/rules/sane.smk): nfws.sane.jobs.evaluate_sane."""
from nfws.sane.jobs import evaluate_sane

evaluate_sane(snakemake)  # noqa: F821 (Snakemake defines it)
