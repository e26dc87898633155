"""Table 10: instance retrieval across architectures."""
from nfws.runlog import script_setup
from nfws.stages.gmn import retrieve

p = snakemake.params
with script_setup(snakemake):
    retrieve(snakemake.wildcards.loss, snakemake.input[0], p.train_archs, p.retrieval,
             snakemake.output[0])
