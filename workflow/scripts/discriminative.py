"""k-means ARI, 1-NN and logistic regression on flattened weights, per representation."""
from nfws.runlog import script_setup
from nfws.stages.lora import discriminative
from nfws.store import group_by_parent

p = snakemake.params
with script_setup(snakemake, p.seed):
    discriminative(group_by_parent(snakemake.input, p.kinds), p.discriminative, p.seed,
                   snakemake.output[0])
