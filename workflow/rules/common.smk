# Helpers shared by every rule file: paths, config sections, fan-out, resources.
from nfws.plan import (ABLATION, BASELINE_METHODS, arch_bbox, arch_names, base_config,
                       family_archs, fit_config, read_manifest, shard_members, training_archs,
                       variant_kind)

RESULTS = config.get("results", "results")


def R(path):
    """A path under the results directory."""
    return f"{RESULTS}/{path}"


def section(*keys):
    """A config section (nested keys), for ``params:`` so changes trigger reruns."""
    node = config
    for key in keys:
        node = node[key]
    return node


def use_gpu():
    """True when jobs should ask for a GPU slot (config device cuda, or auto with CUDA)."""
    if config["device"] == "cpu":
        return False
    if config["device"] == "cuda":
        return True
    import torch

    return torch.cuda.is_available()


def gpu_count(wildcards=None):
    return 1 if use_gpu() else 0


def shapenet_manifest():
    """The ShapeNet-style manifest, after its checkpoint has run."""
    return read_manifest(checkpoints.objects.get(dataset="shapenet").output.manifest)


def nerf_shards(arch):
    return shard_members(shapenet_manifest(), arch, config["nerf"])


def all_nerf_shards():
    """[(arch, shard)] over every architecture."""
    return [(a, s) for a in arch_names(config["nerf"]) for s in nerf_shards(a)]


def all_targets(wildcards):
    targets = [
        R("plots/contact_sheet_shapenet.png"),
        R("plots/contact_sheet_faces.png"),
    ]
    targets += [R(f"plots/nerfs/{a}.png") for a in arch_names(config["nerf"])]
    targets.append(R("tables/nerfs.csv"))
    targets += gmn_targets()
    targets += lora_targets()
    targets += diffusion_targets()
    targets += [R("sane/eval/sane_metrics.md")]
    return targets


def data_section(wildcards):
    return config["data"][wildcards.dataset]


def stage_resources(stage):
    """mem_mb / runtime (minutes) / gpu of one stage, from config ``resources``."""
    res = dict(config["resources"]["default"])
    res.update(config["resources"].get(stage, {}))
    res.pop("threads", None)
    return {"mem_mb": res["mem_mb"], "runtime": res["runtime"],
            "gpu": gpu_count() if res.get("gpu", False) else 0}


def stage_threads(stage):
    res = dict(config["resources"]["default"])
    res.update(config["resources"].get(stage, {}))
    return res["threads"]


def views_layout():
    """Layout of the views on disk: synthetic objects are rendered in the DISN layout."""
    source = config["data"]["shapenet"]["source"]
    return "nf2vec" if source == "nf2vec" else "shapenet_render"


def views_store_inputs(wildcards):
    inputs = {"manifest": R("data/shapenet/manifest.parquet")}
    if config["data"]["shapenet"]["source"] == "synthetic":
        inputs["renders"] = R("data/shapenet/renders")
    return inputs


def arch_section(wildcards):
    return config["nerf"]["architectures"][wildcards.arch]


def first_nerf_shard(wildcards):
    """The architecture's first shard (previews show a few of its NeRFs)."""
    return R(f"nerfs/{wildcards.arch}/{sorted(nerf_shards(wildcards.arch))[0]}.zarr")


def shard_objects(wildcards):
    """Object ids of one NeRF shard (a param, so a changed split retrains the shard)."""
    shards = nerf_shards(wildcards.arch)
    if wildcards.shard not in shards:
        raise ValueError(f"architecture {wildcards.arch}: no shard {wildcards.shard}; "
                         f"shards are {sorted(shards)}")
    return shards[wildcards.shard]


# ----- track A -----------------------------------------------------------------------
GMN_TABLES = ("gmn_classification_seen", "gmn_classification_unseen",
              "gmn_classification_single_arch", "gmn_retrieval", "gmn_centroid_shift")


def all_archs():
    return arch_names(config["nerf"])


def graph_shards(arch):
    return [R(f"graphs/{arch}/{s}.zarr") for s in nerf_shards(arch)]


def nerf_shard_paths(arch):
    return [R(f"nerfs/{arch}/{s}.zarr") for s in nerf_shards(arch)]


def encoder_inputs(wildcards):
    archs = training_archs(wildcards.trainset, config["nerf"]["train_archs"])
    return {
        "graphs": [p for a in archs for p in graph_shards(a)],
        "nerfs": [p for a in archs for p in nerf_shard_paths(a)],
        "views": R("data/shapenet/views.zarr"),
        "manifest": R("data/shapenet/manifest.parquet"),
    }


def gmn_training_section(wildcards):
    """The encoder-training config plus what the teacher needs (params trigger reruns)."""
    gmn = config["gmn"]
    return {"train": gmn["train"], "teacher_samples_per_ray": gmn["teacher_samples_per_ray"]}


def run_architectures():
    """The architectures this run trains NeRFs of (training and unseen), by name."""
    return {a: config["nerf"]["architectures"][a] for a in all_archs()}


def embed_archs(wildcards):
    return family_archs(wildcards.trainset, run_architectures(), config["nerf"]["train_archs"])


def embed_inputs(wildcards):
    return {
        "model": R(f"gmn/{wildcards.loss}/{wildcards.trainset}/model.pt"),
        "graphs": [p for a in embed_archs(wildcards) for p in graph_shards(a)],
        "manifest": R("data/shapenet/manifest.parquet"),
    }


def baseline_archs(name):
    """Architectures of the baseline's family (it embeds the ones it can read)."""
    family = config["nerf"]["architectures"][BASELINE_METHODS[name][1]]["family"]
    return [a for a in all_archs() if config["nerf"]["architectures"][a]["family"] == family]


def baseline_section(wildcards):
    """What a baseline's training reads: its own encoder and the shared training recipe."""
    gmn = config["gmn"]
    return {"train": gmn["train"], "teacher_samples_per_ray": gmn["teacher_samples_per_ray"],
            "baselines": {wildcards.baseline: gmn["baselines"][wildcards.baseline]}}


def baseline_inputs(wildcards):
    return {
        "nerfs": [p for a in baseline_archs(wildcards.baseline) for p in nerf_shard_paths(a)],
        "views": R("data/shapenet/views.zarr"),
        "manifest": R("data/shapenet/manifest.parquet"),
    }


def gmn_single_results():
    single = [R(f"gmn/L_R/{t}/classification_single.parquet") for t in config["gmn"]["single_arch_sets"]]
    return single + [R(f"gmn/baselines/{b}/classification.parquet") for b in config["gmn"]["baselines"]]


def gmn_encoders():
    """(loss, trainset) of every GMN encoder: each loss on ALL, L_R on each single set."""
    return ([(loss, "ALL") for loss in config["gmn"]["losses"]]
            + [("L_R", t) for t in config["gmn"]["single_arch_sets"]])


def gmn_targets():
    losses = config["gmn"]["losses"]
    return ([R(f"tables/{name}.md") for name in GMN_TABLES]
            + [R(f"plots/tsne_{loss}.png") for loss in losses])


# ----- track B -----------------------------------------------------------------------

def lora_shapes_section(wildcards=None):
    return config["lora"]["datasets"]["shapenet"]["shapes"]


def lora_shape_manifest_inputs(wildcards):
    """The data manifest, when track B's shapes are the data manifest's objects."""
    if lora_shapes_section()["source"] == "manifest":
        return {"data_manifest": R("data/shapenet/manifest.parquet")}
    return {}


def lora_targets_source(wildcards):
    """Faces: images store + manifest (splits); shapes: track B's shape manifest (+ the
    generated sources it points into)."""
    if wildcards.dataset == "faces":
        return {"source": R("data/faces/images.zarr"), "manifest": R("data/faces/manifest.parquet")}
    inputs = {"source": R("lora/shapenet/manifest.parquet")}
    if lora_shapes_section()["source"] == "manifest":
        inputs["sources"] = R("data/shapenet/sources")
    return inputs


def lora_manifest(wildcards):
    """The manifest whose splits track B uses."""
    if wildcards.dataset == "faces":
        return R("data/faces/manifest.parquet")
    return R("lora/shapenet/manifest.parquet")


def lora_dataset_targets(wildcards):
    return config["lora"]["datasets"][wildcards.dataset]["targets"]


def lora_base_params(wildcards):
    return base_config(config["lora"], wildcards.dataset)


def lora_base_params_of_fit(wildcards):
    """The base section a fit of ``wildcards.repr`` is checked against (none for the MLP
    kinds, which never read the base field)."""
    if wildcards.repr.startswith("mlp"):
        return None
    return lora_base_params(wildcards)


def lora_fit_params(wildcards):
    return {"fit": fit_config(config["lora"], wildcards.dataset),
            "n_shards": config["lora"]["n_shards"], "structure": config["lora"]["structure"]}


def lora_fit_section(wildcards):
    return fit_config(config["lora"], wildcards.dataset)


def lora_base_reference_of(dataset):
    """The base-reference store of a dataset, none when the dataset is not configured."""
    if dataset not in config["lora"]["datasets"]:
        return []
    return [R(f"lora/{dataset}/base_reference.zarr")]


def lora_shards(dataset, kind):
    return [R(f"lora/{dataset}/{kind}/{s:03d}.zarr") for s in range(config["lora"]["n_shards"])]


def lora_shards_of(dataset):
    """{kind: [shard paths]} of a dataset, empty when the dataset is not configured."""
    if dataset not in config["lora"]["datasets"]:
        return []
    return [p for k in config["lora"]["representations"] for p in lora_shards(dataset, k)]


def lora_discriminative_shards(wildcards):
    return lora_shards_of(wildcards.dataset)


def lora_targets():
    lora = config["lora"]
    targets = [R("tables/mlora_reconstruction.md"), R("tables/mlora_discriminative.md")]
    targets += [R(f"tables/mlora_structure_{lora['structure']['dataset']}.md")]
    targets += [R(f"plots/base_field_{dataset}.png") for dataset in lora["datasets"]]
    return targets


def diffusion_variants():
    return list(config["lora"]["representations"]) + ([ABLATION] if config["diffusion"]["ablation"] else [])


def diffusion_shards(wildcards):
    kind, _ = variant_kind(wildcards.variant)
    return lora_shards(wildcards.dataset, kind)


def generation_params(wildcards):
    """Generation settings; images are rendered at the resolution the fields were fit at."""
    gen = dict(config["diffusion"]["generation"])
    if wildcards.dataset == "faces":
        gen["resolution"] = config["lora"]["datasets"]["faces"]["targets"]["resolution"]
    return gen


def diffusion_metrics(wildcards):
    return [R(f"diffusion/{wildcards.dataset}/{v}/metrics.json") for v in diffusion_variants()]


def diffusion_targets():
    return [R(f"tables/mlora_generation_{d}.md") for d in config["lora"]["datasets"]]


# ----- track C -----------------------------------------------------------------------
def sane_bbox():
    """The NeRF box of the SANE architecture: rotated objects must stay inside it."""
    return arch_bbox("SANE-HASH", config["sane"]["arch"])
