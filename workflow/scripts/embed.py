"""Embed every NeRF of the encoder's architectures: one parquet per architecture."""
from nfws.device import job_device
from nfws.runlog import script_setup
from nfws.stages.gmn import embed_gmn
from nfws.store import group_by_parent

p, i = snakemake.params, snakemake.input
with script_setup(snakemake), job_device(p.device, p.lock_dir) as device:
    embed_gmn(i.model, group_by_parent(i.graphs, p.archs), i.manifest, snakemake.output[0],
              p.batch_size, device)
