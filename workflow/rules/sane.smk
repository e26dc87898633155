# Track C (nfws.sane): SANE on hash-grid NeRFs of objects under known rotations. Its chain is serial
# and long, so it outranks Track B's short jobs (priority 10; Track A's critical path 20-60).


rule sane_dataset:
    input:
        manifest=R("data/shapenet/manifest.parquet"),
        sources=R("data/shapenet/sources"),
    output:
        views=directory(R("sane/views.zarr")),
        manifest=R("sane/manifest.parquet"),
    params:
        data=config["sane"]["data"],
        bbox=sane_bbox(),
        seed=config["seed"],
    log:
        R("logs/sane/dataset.log"),
    priority: 10
    threads: stage_threads("sane")
    resources:
        **stage_resources("sane"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/sane_dataset.py"


rule sane_nerfs:
    input:
        views=R("sane/views.zarr"),
        manifest=R("sane/manifest.parquet"),
    output:
        directory(R("sane/nerfs")),
    params:
        arch=config["sane"]["arch"],
        nerf_fit=config["nerf"]["fit"],
        fit=config["sane"]["fit"],
        shard_size=config["sane"]["shard_size"],
        seed=config["seed"],
        device=config["device"],
        lock_dir=config["gpu_lock_dir"],
        checkpoints=R("checkpoints/sane/nerfs"),
    log:
        R("logs/sane/nerfs.log"),
    priority: 10
    threads: stage_threads("sane")
    resources:
        **stage_resources("sane"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/sane_nerfs.py"


rule train_sane:
    input:
        nerfs=R("sane/nerfs"),
        manifest=R("sane/manifest.parquet"),
    output:
        R("sane/model.pt"),
    params:
        sane=config["sane"],
        seed=config["seed"],
        device=config["device"],
        lock_dir=config["gpu_lock_dir"],
    log:
        R("logs/sane/train.log"),
    priority: 10
    threads: stage_threads("sane")
    resources:
        **stage_resources("sane"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/train_sane.py"


rule evaluate_sane:
    input:
        model=R("sane/model.pt"),
        nerfs=R("sane/nerfs"),
        manifest=R("sane/manifest.parquet"),
    output:
        table=report(R("sane/eval/sane_metrics.md"), caption="../report/sane.rst",
                     category="Tables", subcategory="SANE"),
        csv=R("sane/eval/sane_metrics.csv"),
        json=R("sane/eval/sane_metrics.json"),
        embeddings=R("sane/eval/sane_embeddings.parquet"),
        curves=report(R("sane/eval/sane_loss_curves.png"), caption="../report/sane.rst",
                      category="SANE"),
        tsne=report(R("sane/eval/sane_tsne.png"), caption="../report/sane.rst", category="SANE"),
    params:
        sane=config["sane"],
        seed=config["seed"],
        device=config["device"],
        lock_dir=config["gpu_lock_dir"],
    log:
        R("logs/sane/evaluate.log"),
    threads: stage_threads("sane")
    resources:
        **stage_resources("sane"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/evaluate_sane.py"
