# NeRF farm (nfws.farm): one batched training job per (architecture, shard), then previews.


rule train_nerfs:
    input:
        views=R("data/shapenet/views.zarr"),
        manifest=R("data/shapenet/manifest.parquet"),
    output:
        directory(R("nerfs/{arch}/{shard}.zarr")),
    params:
        arch=arch_section,
        members=shard_objects,
        fit=config["nerf"]["fit"],
        seed=config["seed"],
        device=config["device"],
        lock_dir=config["gpu_lock_dir"],
        checkpoints=R("checkpoints/nerfs/{arch}/{shard}"),
    log:
        R("logs/train_nerfs/{arch}_{shard}.log"),
    priority: 40
    threads: stage_threads("nerf")
    resources:
        **stage_resources("nerf"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/train_nerfs.py"


rule nerf_previews:
    input:
        shard=first_nerf_shard,
        views=R("data/shapenet/views.zarr"),
    output:
        report(R("plots/nerfs/{arch}.png"), caption="../report/nerf_previews.rst",
               category="NeRF farm", subcategory="{arch}"),
    params:
        previews=config["plots"]["nerf_previews"],
        fit=config["nerf"]["fit"],
    log:
        R("logs/nerf_previews/{arch}.log"),
    threads: stage_threads("default")
    resources:
        **stage_resources("default"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/nerf_previews.py"


rule nerf_table:
    input:
        lambda wildcards: [p for a in arch_names(config["nerf"]) for p in nerf_shard_paths(a)],
    output:
        csv=report(R("tables/nerfs.csv"), caption="../report/nerf_table.rst",
                   category="NeRF farm"),
        md=R("tables/nerfs.md"),
    params:
        shards=lambda wildcards: {a: nerf_shard_paths(a) for a in arch_names(config["nerf"])},
    log:
        R("logs/nerf_table.log"),
    threads: stage_threads("default")
    resources:
        **stage_resources("default"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/nerf_table.py"
