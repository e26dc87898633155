# Data stages: objects (manifest + sources), synthetic renders, views / images stores.


checkpoint objects:
    output:
        manifest=R("data/{dataset}/manifest.parquet"),
        sources=directory(R("data/{dataset}/sources")),
    params:
        data=data_section,
        seed=config["seed"],
    log:
        R("logs/objects_{dataset}.log"),
    benchmark:
        R("benchmarks/objects_{dataset}.tsv")
    wildcard_constraints:
        dataset="shapenet|faces",
    resources:
        mem_mb=2000,
        runtime=30,
    script:
        "../scripts/objects.py"
