"""t-SNE of test embeddings, coloured by class, marked by architecture."""
from nfws.runlog import script_setup
from nfws.stages.gmn import tsne

p = snakemake.params
with script_setup(snakemake):
    tsne(snakemake.wildcards.loss, snakemake.input[0], p.train_archs, p.tsne, snakemake.output[0])
