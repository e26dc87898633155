# Track B (nfws.mlora): fitted weight representations (mLoRA and baselines), their metrics,
# and weight diffusion over them (samples, generation metrics).


rule lora_shape_manifest:
    input:
        unpack(lora_shape_manifest_inputs),
    output:
        R("lora/shapenet/manifest.parquet"),
    params:
        shapes=lora_shapes_section,
        seed=config["seed"],
    log:
        R("logs/lora_shape_manifest.log"),
    threads: stage_threads("default")
    resources:
        **stage_resources("default"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/lora_shape_manifest.py"


rule lora_targets:
    input:
        unpack(lora_targets_source),
    output:
        directory(R("lora/{dataset}/targets.zarr")),
    params:
        targets=lora_dataset_targets,
        seed=config["seed"],
    log:
        R("logs/lora_targets/{dataset}.log"),
    wildcard_constraints:
        dataset="faces|shapenet",
    threads: stage_threads("lora")
    resources:
        **stage_resources("lora"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/lora_targets.py"


rule base_field:
    input:
        R("lora/{dataset}/targets.zarr"),
    output:
        R("lora/{dataset}/base.pt"),
    params:
        base=lora_base_params,
        seed=config["seed"],
        device=config["device"],
        lock_dir=config["gpu_lock_dir"],
    log:
        R("logs/base_field/{dataset}.log"),
    threads: stage_threads("lora")
    resources:
        **stage_resources("lora"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/base_field.py"


rule fit_instances:
    input:
        targets=R("lora/{dataset}/targets.zarr"),
        base=R("lora/{dataset}/base.pt"),
    output:
        directory(R("lora/{dataset}/{repr}/{shard}.zarr")),
    params:
        base=lora_base_params_of_fit,
        fit=lora_fit_params,
        seed=config["seed"],
        device=config["device"],
        lock_dir=config["gpu_lock_dir"],
    log:
        R("logs/fit_instances/{dataset}_{repr}_{shard}.log"),
    wildcard_constraints:
        repr="mlp|mlp_asym|lora|lora_asym|mlora|mlora_asym",
        shard=r"\d+",
    threads: stage_threads("lora")
    resources:
        **stage_resources("lora"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/fit_instances.py"


rule base_reference:
    input:
        targets=R("lora/{dataset}/targets.zarr"),
        base=R("lora/{dataset}/base.pt"),
    output:
        directory(R("lora/{dataset}/base_reference.zarr")),
    params:
        base=lora_base_params,
        fit=lora_fit_section,
        seed=config["seed"],
        device=config["device"],
        lock_dir=config["gpu_lock_dir"],
    log:
        R("logs/base_reference/{dataset}.log"),
    wildcard_constraints:
        dataset="faces|shapenet",
    threads: stage_threads("lora")
    resources:
        **stage_resources("lora"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/base_reference.py"


rule weight_structure:
    input:
        targets=R("lora/{dataset}/targets.zarr"),
        base=R("lora/{dataset}/base.pt"),
    output:
        R("lora/{dataset}/structure/{repr}.csv"),
    params:
        base=lora_base_params_of_fit,
        fit=lora_fit_params,
        seed=config["seed"],
        device=config["device"],
        lock_dir=config["gpu_lock_dir"],
    log:
        R("logs/weight_structure/{dataset}_{repr}.log"),
    threads: stage_threads("lora")
    resources:
        **stage_resources("lora"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/weight_structure.py"


rule structure_outputs:
    input:
        expand(R("lora/{{dataset}}/structure/{repr}.csv"), repr=config["lora"]["representations"]),
    output:
        plot=report(R("plots/structure_{dataset}.png"), caption="../report/structure.rst",
                    category="mLoRA", subcategory="weight-space structure"),
        csv=R("tables/mlora_structure_{dataset}.csv"),
        md=report(R("tables/mlora_structure_{dataset}.md"), caption="../report/mlora_tables.rst",
                  category="Tables", subcategory="mLoRA"),
    log:
        R("logs/structure_outputs/{dataset}.log"),
    threads: stage_threads("default")
    resources:
        **stage_resources("default"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/structure_outputs.py"


rule discriminative:
    input:
        lora_discriminative_shards,
    output:
        directory(R("lora/{dataset}/discriminative")),
    params:
        kinds=config["lora"]["representations"],
        discriminative=config["lora"]["discriminative"],
        seed=config["seed"],
    log:
        R("logs/discriminative/{dataset}.log"),
    threads: stage_threads("lora")
    resources:
        **stage_resources("lora"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/discriminative.py"


rule base_field_curve:
    input:
        reference=R("lora/{dataset}/base_reference.zarr"),
        shards=lambda wildcards: lora_shards_of(wildcards.dataset),
    output:
        report(R("plots/base_field_{dataset}.png"), caption="../report/base_field.rst",
               category="mLoRA", subcategory="base field"),
    params:
        kinds=config["lora"]["representations"],
    log:
        R("logs/base_field_curve/{dataset}.log"),
    wildcard_constraints:
        dataset="faces|shapenet",
    threads: stage_threads("default")
    resources:
        **stage_resources("default"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/base_field_curve.py"


rule lora_tables:
    input:
        faces=lora_shards_of("faces"),
        shapenet=lora_shards_of("shapenet"),
        faces_base=lora_base_reference_of("faces"),
        shapenet_base=lora_base_reference_of("shapenet"),
        discriminative=R(f"lora/{config['lora']['discriminative']['dataset']}/discriminative"),
    output:
        reconstruction=report(R("tables/mlora_reconstruction.md"), caption="../report/mlora_tables.rst",
                              category="Tables", subcategory="mLoRA"),
        discriminative=report(R("tables/mlora_discriminative.md"), caption="../report/mlora_tables.rst",
                              category="Tables", subcategory="mLoRA"),
        reconstruction_csv=R("tables/mlora_reconstruction.csv"),
        discriminative_csv=R("tables/mlora_discriminative.csv"),
    params:
        kinds=config["lora"]["representations"],
    log:
        R("logs/lora_tables.log"),
    threads: stage_threads("default")
    resources:
        **stage_resources("default"),
    conda:
        "../../envs/nfws.yaml"
    script:
        "../scripts/lora_tables.py"




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
