"""The data stage's jobs: one function per rule of ``workflow/rules/data.smk``, each called
with the rule's ``snakemake`` object by the script of the same name.

A job function unpacks the rule's inputs and params, sets up its log and threads and
calls the library: the manifest and object sources (:mod:`nfws.data.sources`), renders
(:mod:`nfws.data.sphere_trace`), the views and images stores and their contact sheets.
"""
from __future__ import annotations

from nfws.runlog import script_setup


def objects(smk) -> None:
    """The manifest and, for synthetic data, the object sources."""
    from nfws.data.sources import build_manifest

    with script_setup(smk):
        build_manifest(smk.wildcards.dataset, smk.params.data, smk.params.seed,
                       smk.output.manifest, smk.output.sources)


def render_objects(smk) -> None:
    """Sphere-traced views of the synthetic objects."""
    from nfws.data.sphere_trace import render_objects as render

    p = smk.params
    with script_setup(smk):
        render(smk.input.manifest, smk.output[0], p.resolution, p.n_views, p.seed)


def views_store(smk) -> None:
    """The posed views of every object, in one store."""
    from nfws.data.views import build_views_store

    with script_setup(smk):
        build_views_store(smk.input.manifest, smk.output[0], smk.params.resolution,
                          smk.params.layout, render_root=smk.input.get("renders"))


def images_store(smk) -> None:
    """The images of every object, in one store, with the faces' attribute labels."""
    from nfws.data.faces import faces_labels_csv
    from nfws.data.images import SizeLimits, build_images_store

    data = smk.params.data
    with script_setup(smk):
        build_images_store(smk.input.manifest, smk.output[0], data["resolution"],
                           SizeLimits.from_section(data),
                           faces_labels_csv(data, smk.input.sources))


def contact_sheet(smk) -> None:
    """A grid of a few objects per class: of the views store, or of the images store."""
    from nfws.data.contact_sheet import images_contact_sheet, views_contact_sheet

    plot = smk.params.plot
    with script_setup(smk):
        if "views" in smk.input.keys():
            views_contact_sheet(smk.input.views, smk.input.manifest, smk.output[0],
                                per_class=plot["per_class"], views=tuple(plot["views"]),
                                tile=plot["tile"])
        else:
            images_contact_sheet(smk.input.images, smk.output[0], per_class=plot["per_class"],
                                 tile=plot["tile"])
