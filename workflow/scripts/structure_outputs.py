"""Weight-space structure plot and table of one dataset."""
from nfws.runlog import script_setup
from nfws.stages.lora import structure_outputs

o = snakemake.output
with script_setup(snakemake):
    structure_outputs(snakemake.input, o.plot, o.csv, o.md, snakemake.wildcards.dataset)
