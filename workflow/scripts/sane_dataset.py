"""Objects under K known rotations: views store and manifest of rotated instances."""
from nfws.runlog import script_setup
from nfws.sane.rotations import build_rotated_dataset

p, o = snakemake.params, snakemake.output
with script_setup(snakemake, p.seed):
    build_rotated_dataset(snakemake.input.manifest, o.views, o.manifest, p.data, p.seed, bbox=p.bbox)
