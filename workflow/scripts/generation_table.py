"""Generation metrics of every diffusion variant of one dataset, beside the published ones."""
from pathlib import Path

from nfws.runlog import script_setup
from nfws.stages.lora import generation_table

with script_setup(snakemake):
    metrics = {Path(p).parent.name: p for p in snakemake.input}
    generation_table(metrics, snakemake.wildcards.dataset, snakemake.output.csv,
                     snakemake.output.md)
