# nfws: weight-space learning on neural fields.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/nerf.smk"


rule all:
    input:
        all_targets,
    default_target: True
