"""NeRF farm summary table: NeRFs kept and dropped, held-out PSNR, per architecture."""
from nfws.eval.nerf_table import nerf_table
from nfws.runlog import script_setup

with script_setup(snakemake):
    nerf_table(snakemake.params.shards, snakemake.output.csv, snakemake.output.md)
