"""Objects stage: the manifest and, for synthetic data, the object sources."""
from nfws.data.sources import build_manifest
from nfws.runlog import script_setup

with script_setup(snakemake):
    build_manifest(snakemake.wildcards.dataset, snakemake.params.data, snakemake.params.seed,
                   snakemake.output.manifest, snakemake.output.sources)
