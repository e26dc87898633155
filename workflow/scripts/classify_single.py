"""Table 5: encoder and classifier trained on one architecture, tested on its family."""
from nfws.device import choose_device
from nfws.runlog import script_setup
from nfws.stages.gmn import classify_single

p = snakemake.params
with script_setup(snakemake):
    classify_single(snakemake.wildcards.trainset, snakemake.input[0], p.archs, p.classifier,
                    snakemake.output[0], choose_device(p.device))
