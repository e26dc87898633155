"""Rule sane_nerfs (workflow/rules/sane.smk): nfws.sane.jobs.sane_nerfs."""
from nfws.sane.jobs import sane_nerfs

sane_nerfs(snakemake)  # noqa: F821 (Snakemake defines it)
