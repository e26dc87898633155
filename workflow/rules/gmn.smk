# Track A (nfws.gmn): parameter graphs of the NeRFs, GMN encoders, embeddings, classification, retrieval, tables.


rule graphs:
    input:
        R("nerfs/{arch}/{shard}.zarr"),
    output:
        directory(R("graphs/{arch}/{shard}.zarr")),
    log:
        R("logs/graphs/{arch}_{shard}.log"),
    priority: 40
    threads: stage_threads("graphs")
    resources:
        **stage_resources("graphs"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/graphs.py"


rule train_encoder:
    input:
        unpack(encoder_inputs),
    output:
        model=R("gmn/{loss}/{trainset}/model.pt"),
        log=R("gmn/{loss}/{trainset}/train_log.json"),
    params:
        gmn=gmn_training_section,
        seed=config["seed"],
        device=config["device"],
        lock_dir=config["gpu_lock_dir"],
        checkpoint=R("checkpoints/gmn/{loss}/{trainset}.pt"),
    log:
        R("logs/train_encoder/{loss}_{trainset}.log"),
    priority: 50
    threads: stage_threads("gmn")
    resources:
        **stage_resources("gmn"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/train_encoder.py"


rule embed:
    input:
        unpack(embed_inputs),
    output:
        directory(R("gmn/{loss}/{trainset}/embeddings")),
    params:
        archs=embed_archs,
        batch_size=config["gmn"]["embed_batch_size"],
        reference=config["gmn"]["embed_reference"],
        seed=config["seed"],
        device=config["device"],
        lock_dir=config["gpu_lock_dir"],
    log:
        R("logs/embed/{loss}_{trainset}.log"),
    priority: 30
    threads: stage_threads("gmn")
    resources:
        **stage_resources("gmn"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/embed.py"


rule classify_all:
    input:
        R("gmn/{loss}/ALL/embeddings"),
    output:
        R("gmn/{loss}/ALL/classification.parquet"),
    params:
        archs=all_archs(),
        train_archs=config["nerf"]["train_archs"],
        classifier=config["gmn"]["classifier"],
        device=config["device"],
    log:
        R("logs/classify/{loss}_ALL.log"),
    priority: 20
    threads: stage_threads("gmn")
    resources:
        **stage_resources("gmn"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/classify_all.py"


rule classify_single:
    input:
        R("gmn/L_R/{trainset}/embeddings"),
    output:
        R("gmn/L_R/{trainset}/classification_single.parquet"),
    params:
        archs=embed_archs,
        classifier=config["gmn"]["classifier"],
        device=config["device"],
    log:
        R("logs/classify/L_R_{trainset}_single.log"),
    priority: 20
    threads: stage_threads("gmn")
    resources:
        **stage_resources("gmn"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/classify_single.py"


rule baseline:
    input:
        unpack(baseline_inputs),
    output:
        classification=R("gmn/baselines/{baseline}/classification.parquet"),
        model=R("gmn/baselines/{baseline}/model.pt"),
    params:
        gmn=baseline_section,
        classifier=config["gmn"]["classifier"],
        seed=config["seed"],
        device=config["device"],
        lock_dir=config["gpu_lock_dir"],
    log:
        R("logs/baseline/{baseline}.log"),
    wildcard_constraints:
        baseline="nf2vec|cardace",
    threads: stage_threads("gmn")
    resources:
        **stage_resources("gmn"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/baseline.py"


rule retrieve:
    input:
        R("gmn/{loss}/ALL/embeddings"),
    output:
        R("gmn/{loss}/ALL/retrieval.parquet"),
    params:
        train_archs=config["nerf"]["train_archs"],
        retrieval=config["gmn"]["retrieval"],
    log:
        R("logs/retrieve/{loss}.log"),
    threads: stage_threads("default")
    resources:
        **stage_resources("default"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/retrieve.py"


rule tsne:
    input:
        R("gmn/{loss}/ALL/embeddings"),
    output:
        report(R("plots/tsne_{loss}.png"), caption="../report/tsne.rst", category="GMN",
               subcategory="t-SNE"),
    params:
        train_archs=config["nerf"]["train_archs"],
        tsne=config["gmn"]["tsne"],
    log:
        R("logs/tsne/{loss}.log"),
    threads: stage_threads("default")
    resources:
        **stage_resources("default"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/tsne.py"


rule gmn_tables:
    input:
        classification=expand(R("gmn/{loss}/ALL/classification.parquet"), loss=config["gmn"]["losses"]),
        single=gmn_single_results(),
        retrieval=expand(R("gmn/{loss}/ALL/retrieval.parquet"), loss=config["gmn"]["losses"]),
        embeddings=[R(f"gmn/{loss}/{trainset}/embeddings") for loss, trainset in gmn_encoders()],
    output:
        **{name: report(R(f"tables/{name}.md"), caption="../report/gmn_tables.rst",
                        category="Tables", subcategory="GMN")
           for name in GMN_TABLES},
    params:
        train_archs=config["nerf"]["train_archs"],
        unseen_archs=config["nerf"]["unseen_archs"],
        architectures=run_architectures(),
        encoders=gmn_encoders(),
    log:
        R("logs/gmn_tables.log"),
    threads: stage_threads("default")
    resources:
        **stage_resources("default"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/gmn_tables.py"
