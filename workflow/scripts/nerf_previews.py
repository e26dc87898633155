"""Ground truth beside NeRF renders of held-out views, for a few objects of one shard."""
from nfws.eval.nerf_previews import nerf_previews
from nfws.runlog import script_setup

with script_setup(snakemake):
    nerf_previews(snakemake.input.shard, snakemake.input.views, snakemake.output[0],
                  **snakemake.params.previews)
