"""Reconstruction and discriminative tables of track B, ours beside the published ones."""
from pathlib import Path

from nfws.runlog import script_setup
from nfws.stages.lora import lora_tables
from nfws.store import group_by_parent

i = snakemake.input
with script_setup(snakemake):
    lora_tables(group_by_parent(i.faces), group_by_parent(i.shapenet), i.discriminative,
                snakemake.params.kinds, Path(snakemake.output.reconstruction).parent,
                {"faces": i.faces_base, "shapenet": i.shapenet_base})
