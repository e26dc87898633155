"""Images store: the 2D dataset (synthetic faces or an image folder) in one Zarr store."""
from nfws.data.images import SizeLimits, build_images_store
from nfws.data.faces import faces_labels_csv
from nfws.runlog import script_setup

with script_setup(snakemake):
    build_images_store(snakemake.input.manifest, snakemake.output[0],
                       snakemake.params.data["resolution"],
                       SizeLimits.from_section(snakemake.params.data),
                       faces_labels_csv(snakemake.params.data, snakemake.input.sources))
