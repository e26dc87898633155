"""Parameter graphs of one NeRF shard: the topology once, edge values per NeRF."""
from nfws.graphs.store import convert_shard
from nfws.runlog import script_setup

with script_setup(snakemake):
    convert_shard(snakemake.input[0], snakemake.output[0])
