"""Sample weights, decode them into fields, score them against held-out ground truth."""
from nfws.device import job_device
from nfws.runlog import script_setup
from nfws.stages.lora import generate_and_score

p, i, o = snakemake.params, snakemake.input, snakemake.output
with script_setup(snakemake, p.seed), job_device(p.device, p.lock_dir) as device:
    generate_and_score(snakemake.wildcards.dataset, i.model, i.shards, i.base, i.targets,
                       i.manifest, i.extractor, p.generation, p.extractor, p.seed, o.samples,
                       o.grid, o.metrics, device)
