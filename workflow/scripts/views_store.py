"""Views store: every object's images and cameras in one Zarr store."""
from nfws.data.views import build_views_store
from nfws.runlog import script_setup

with script_setup(snakemake):
    build_views_store(snakemake.input.manifest, snakemake.output[0], snakemake.params.resolution,
                      snakemake.params.layout, render_root=snakemake.input.get("renders"))
