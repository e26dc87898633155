"""What every representation is fitted to: images (faces) or occupancy samples (shapes)."""
from nfws.runlog import script_setup
from nfws.stages.lora import build_targets

with script_setup(snakemake, snakemake.params.seed):
    build_targets(snakemake.wildcards.dataset, snakemake.input.source, snakemake.params.targets,
                  snakemake.params.seed, snakemake.output[0], snakemake.input.get("manifest"))
