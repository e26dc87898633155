# Helpers shared by every rule file: paths, config sections, fan-out, resources.
import pandas as pd

from nfws.plan import arch_names, shard_members

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
    return pd.read_parquet(checkpoints.objects.get(dataset="shapenet").output.manifest)


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
#    targets += [R(f"nerfs/{a}/{s}.zarr") for a, s in all_nerf_shards()]
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
