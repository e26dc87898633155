"""Hash-grid NeRFs of every rotated instance, trained by the NeRF farm."""
from nfws.device import job_device
from nfws.fields.spec import ArchSpec
from nfws.runlog import script_setup
from nfws.sane.rotations import fit_rotated_nerfs

p, i = snakemake.params, snakemake.input
with script_setup(snakemake, p.seed), job_device(p.device, p.lock_dir) as device:
    fit_rotated_nerfs(i.views, i.manifest, ArchSpec.from_dict("SANE-HASH", p.arch), p.fit,
                      snakemake.output[0], device, p.seed, shard_size=p.shard_size,
                      checkpoint_dir=p.checkpoints)
