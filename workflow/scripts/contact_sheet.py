"""Contact sheets: a few objects per class, to look at the data."""
from nfws.eval.contact_sheet import images_contact_sheet, views_contact_sheet
from nfws.runlog import script_setup

plot = snakemake.params.plot
with script_setup(snakemake):
    if "views" in snakemake.input.keys():
        views_contact_sheet(snakemake.input.views, snakemake.input.manifest, snakemake.output[0],
                            per_class=plot["per_class"], views=tuple(plot["views"]),
                            tile=plot["tile"])
    else:
        images_contact_sheet(snakemake.input.images, snakemake.output[0],
                             per_class=plot["per_class"], tile=plot["tile"])
