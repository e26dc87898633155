# Data stages (nfws.data): objects (manifest + sources), synthetic renders, views / images stores,
# contact sheets.


checkpoint objects:
    output:
        manifest=R("data/{dataset}/manifest.parquet"),
        sources=directory(R("data/{dataset}/sources")),
    params:
        data=data_section,
        seed=config["seed"],
    log:
        R("logs/objects_{dataset}.log"),
    wildcard_constraints:
        dataset="shapenet|faces",
    threads: stage_threads("data")
    resources:
        **stage_resources("data"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/objects.py"


rule render_objects:
    input:
        manifest=R("data/shapenet/manifest.parquet"),
        sources=R("data/shapenet/sources"),
    output:
        directory(R("data/shapenet/renders")),
    params:
        resolution=config["data"]["shapenet"]["resolution"],
        n_views=config["data"]["shapenet"]["n_views"],
        seed=config["seed"],
    log:
        R("logs/render_objects.log"),
    priority: 60
    threads: stage_threads("data")
    resources:
        **stage_resources("data"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/render_objects.py"


rule views_store:
    input:
        unpack(views_store_inputs),
    output:
        directory(R("data/shapenet/views.zarr")),
    params:
        resolution=config["data"]["shapenet"]["resolution"],
        layout=views_layout(),
    log:
        R("logs/views_store.log"),
    priority: 60
    threads: stage_threads("data")
    resources:
        **stage_resources("data"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/views_store.py"


rule images_store:
    input:
        manifest=R("data/faces/manifest.parquet"),
        sources=R("data/faces/sources"),
    output:
        directory(R("data/faces/images.zarr")),
    params:
        data=config["data"]["faces"],
    log:
        R("logs/images_store.log"),
    threads: stage_threads("data")
    resources:
        **stage_resources("data"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/images_store.py"


rule contact_sheet_shapenet:
    input:
        views=R("data/shapenet/views.zarr"),
        manifest=R("data/shapenet/manifest.parquet"),
    output:
        report(R("plots/contact_sheet_shapenet.png"), caption="../report/contact_sheet.rst",
               category="Data"),
    params:
        plot=config["plots"]["contact_sheet"],
    log:
        R("logs/contact_sheet_shapenet.log"),
    threads: stage_threads("data")
    resources:
        **stage_resources("data"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/contact_sheet.py"


rule contact_sheet_faces:
    input:
        images=R("data/faces/images.zarr"),
    output:
        report(R("plots/contact_sheet_faces.png"), caption="../report/contact_sheet.rst",
               category="Data"),
    params:
        plot=config["plots"]["contact_sheet"],
    log:
        R("logs/contact_sheet_faces.log"),
    threads: stage_threads("data")
    resources:
        **stage_resources("data"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/contact_sheet.py"
