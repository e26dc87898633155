"""Render stage: sphere-trace every synthetic object into the DISN ShapenetRender layout."""
from nfws.data.sphere_trace import render_objects
from nfws.runlog import script_setup

with script_setup(snakemake):
    render_objects(snakemake.input.manifest, snakemake.output[0], snakemake.params.resolution,
                   snakemake.params.n_views, snakemake.params.seed)
