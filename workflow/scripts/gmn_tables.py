"""Every GMN table, ours beside the published numbers."""
from pathlib import Path

from nfws.runlog import script_setup
from nfws.stages.gmn import centroid_table, tables

p, i = snakemake.params, snakemake.input
with script_setup(snakemake):
    centroids = centroid_table(p.encoders, i.embeddings, p.architectures, p.train_archs)
    tables(i.classification, i.single, i.retrieval, centroids, Path(snakemake.output[0]).parent,
           p.train_archs, p.unseen_archs)
