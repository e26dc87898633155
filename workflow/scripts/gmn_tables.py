"""Every GMN table, ours beside the published numbers."""
from pathlib import Path

from nfws.runlog import script_setup
from nfws.stages.gmn import tables

p, i = snakemake.params, snakemake.input
with script_setup(snakemake):
    tables(i.classification, i.single, i.retrieval, Path(snakemake.output[0]).parent, p.train_archs, p.unseen_archs)
