# Track B generation: diffusion over fitted weights, samples, generation metrics.


rule feature_extractor:
    input:
        targets=R("lora/{dataset}/targets.zarr"),
        manifest=lora_manifest,
    output:
        R("diffusion/{dataset}/extractor.pt"),
    params:
        extractor=config["diffusion"]["feature_extractor"],
        seed=config["seed"],
        device=config["device"],
        lock_dir=config["gpu_lock_dir"],
    log:
        R("logs/feature_extractor/{dataset}.log"),
    threads: stage_threads("diffusion")
    resources:
        **stage_resources("diffusion"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/feature_extractor.py"


rule train_diffusion:
    input:
        shards=diffusion_shards,
        manifest=lora_manifest,
    output:
        R("diffusion/{dataset}/{variant}/model.pt"),
    params:
        model=config["diffusion"]["model"],
        seed=config["seed"],
        device=config["device"],
        lock_dir=config["gpu_lock_dir"],
    log:
        R("logs/train_diffusion/{dataset}_{variant}.log"),
    threads: stage_threads("diffusion")
    resources:
        **stage_resources("diffusion"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/train_diffusion.py"


rule generate:
    input:
        model=R("diffusion/{dataset}/{variant}/model.pt"),
        shards=diffusion_shards,
        base=R("lora/{dataset}/base.pt"),
        targets=R("lora/{dataset}/targets.zarr"),
        manifest=lora_manifest,
        extractor=R("diffusion/{dataset}/extractor.pt"),
    output:
        samples=directory(R("diffusion/{dataset}/{variant}/samples.zarr")),
        grid=report(R("plots/samples/{dataset}_{variant}.png"), caption="../report/samples.rst",
                    category="Diffusion", subcategory="{dataset}"),
        metrics=R("diffusion/{dataset}/{variant}/metrics.json"),
    params:
        generation=generation_params,
        extractor=config["diffusion"]["feature_extractor"],
        seed=config["seed"],
        device=config["device"],
        lock_dir=config["gpu_lock_dir"],
    log:
        R("logs/generate/{dataset}_{variant}.log"),
    threads: stage_threads("diffusion")
    resources:
        **stage_resources("diffusion"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/generate.py"


rule generation_table:
    input:
        diffusion_metrics,
    output:
        csv=R("tables/mlora_generation_{dataset}.csv"),
        md=report(R("tables/mlora_generation_{dataset}.md"), caption="../report/generation.rst",
                  category="Tables", subcategory="Generation"),
    log:
        R("logs/generation_table/{dataset}.log"),
    threads: stage_threads("default")
    resources:
        **stage_resources("default"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/generation_table.py"
