"""The 3D shapes track B fits: the data manifest's objects or real onet / mesh shapes."""
from nfws.runlog import script_setup
from nfws.stages.lora import shape_manifest

p = snakemake.params
with script_setup(snakemake, p.seed):
    shape_manifest(p.shapes, p.seed, snakemake.output[0], snakemake.input.get("data_manifest"))
