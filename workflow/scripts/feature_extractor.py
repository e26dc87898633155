"""Rule feature_extractor (workflow/rules/mlora.smk): nfws.mlora.jobs.feature_extractor."""
from nfws.mlora.jobs import feature_extractor

feature_extractor(snakemake)  # noqa: F821 (Snakemake defines it)
