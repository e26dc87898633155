"""Weight-space structure of one representation: fits under perturbed initialisations."""
from nfws.device import job_device
from nfws.eval.structure import weight_space_structure
from nfws.runlog import script_setup

p = snakemake.params
with script_setup(snakemake, p.seed), job_device(p.device, p.lock_dir) as device:
    weight_space_structure(snakemake.wildcards.repr, snakemake.input.base, snakemake.input.targets,
                           p.fit["fit"], p.fit["structure"], snakemake.output[0], p.seed,
                           device=device, base_cfg=p.base)
