"""Tables 8 / 9: classifiers over the embeddings of an encoder trained on ALL."""
from nfws.device import choose_device
from nfws.runlog import script_setup
from nfws.stages.gmn import classify_all

p = snakemake.params
with script_setup(snakemake):
    classify_all(snakemake.wildcards.loss, snakemake.input[0], p.archs, p.train_archs,
                 p.classifier, snakemake.output[0], choose_device(p.device))
