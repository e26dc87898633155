"""Rule render_objects (workflow/rules/data.smk): nfws.data.jobs.render_objects."""
from nfws.data.jobs import render_objects

render_objects(snakemake)  # noqa: F821 (Snakemake defines it)
