"""Track B stage entry points: targets, base fields, instance fitting, metrics, diffusion.

One function per Snakemake job. Per-dataset settings (``lora.datasets.{dataset}``) are
merged into the shared ``base`` / ``fit`` sections here, so the rules pass whole config
sections through ``params:`` and a changed value reruns exactly its dependants.

Each entry point imports its stage's modules when it is called: the rule files import
this module for its config helpers, and a job then pays only for its own imports
(torch, sklearn, scikit-image and matplotlib together cost seconds per job).
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from nfws.models.budget import lora_n_params, matched_mlp_hidden, synthesis_dims


#: The modality of each dataset's targets.
DATASETS = {"faces": "image", "shapenet": "occupancy"}
#: (coordinate, output) sizes of each modality's fields (``nfws.data.targets``).
FIELD_DIMS = {"image": (2, 3), "occupancy": (3, 1)}
#: Published single-category generation tables (paper Table 3), by class name.
SINGLE_CATEGORY_TABLES = {"airplane": "ShapeNet-Airplane"}
#: Diffusion variants: a representation, or the ablation of the hierarchical encoder.
ABLATION = "mlora_asym_no_encoder"


def check_dataset(dataset: str) -> None:
    if dataset not in DATASETS:
        raise ValueError(f"config lora.datasets: unknown dataset {dataset!r}; known {sorted(DATASETS)}")


def base_config(lora: Mapping, dataset: str) -> dict:
    """The base-field section with the dataset's Fourier frequency."""
    check_dataset(dataset)
    return {**lora["base"], "omega0": float(lora["datasets"][dataset]["omega0"])}


def fit_config(lora: Mapping, dataset: str) -> dict:
    """The fitting section with the dataset's frequency, MLP initialisation rule and MLP
    width: ``fit.mlp_hidden``, or when it is null (or absent) :func:`matched_mlp_hidden`."""
    entry = lora["datasets"][dataset]
    fit = {**lora["fit"], "omega0": float(entry["omega0"]),
           "mlp_template_init": bool(entry["mlp_template_init"])}
    if fit.get("mlp_hidden") is None:
        fit["mlp_hidden"] = matched_mlp_hidden_for(lora, dataset)
    return fit


def matched_mlp_hidden_for(lora: Mapping, dataset: str) -> int:
    """The MLP width matching the LoRA kinds' parameter count on this dataset's base
    field (``nfws.models.budget.matched_mlp_hidden``)."""
    check_dataset(dataset)
    coord_dim, out_dim = FIELD_DIMS[DATASETS[dataset]]
    base = lora["base"]
    dims = synthesis_dims(int(base["enc_width"]), int(base["width"]), int(base["n_blocks"]),
                          out_dim)
    return matched_mlp_hidden(lora_n_params(dims, int(lora["fit"]["rank"])), coord_dim, out_dim)


def shape_manifest(section: Mapping, seed: int, out_path, data_manifest=None) -> None:
    """The manifest of the 3D shapes track B fits (``lora.datasets.shapenet.shapes``):
    the data manifest's objects or real onet / mesh shapes, optionally one category."""
    from nfws.data.shape_sources import build_shape_manifest

    build_shape_manifest(dict(section), seed, out_path, data_manifest)


def build_targets(dataset: str, source, target_cfg: Mapping, seed: int, out_path,
                  manifest=None) -> None:
    """Images (faces: ``source`` = images store, ``manifest`` = its data manifest, for the
    splits) or occupancy samples (shapenet: ``source`` = the shape manifest) that every
    representation is fitted to."""
    from nfws.data.targets import build_image_targets, build_shape_targets

    check_dataset(dataset)
    if dataset == "faces":
        build_image_targets(source, out_path, int(target_cfg["resolution"]),
                            target_cfg.get("n_instances"), manifest)
    else:
        build_shape_targets(source, out_path, dict(target_cfg), seed)


def structure_outputs(csv_paths: Sequence, out_png, csv_path, md_path, dataset: str) -> None:
    from nfws.eval.mlora_tables import structure_table
    from nfws.eval.structure import plot_structure

    plot_structure(list(csv_paths), out_png, f"weight-space structure ({dataset})")
    structure_table(list(csv_paths), csv_path, md_path)


def discriminative(kind_shards: Mapping[str, Sequence], cfg: Mapping, seed: int, out_dir) -> None:
    """Scores over seeded random splits for each representation, plus its t-SNE plot."""
    from nfws.eval.discriminative import discriminative_metrics

    out_dir = Path(out_dir)
    for kind, shards in kind_shards.items():
        discriminative_metrics(list(shards), dict(cfg), out_dir / f"{kind}.parquet", seed,
                               out_dir / f"tsne_{kind}.png")


def base_reference(base, targets, fit_section: Mapping, base_section: Mapping, seed: int,
                   out_path, device) -> dict:
    """The base field's reference rows of the reconstruction table: its training latents,
    and latent-only fits of the test split with the representations' schedule."""
    from nfws.fit.base_reference import base_reference as measure

    return measure(base, targets, dict(fit_section), out_path, seed, device, dict(base_section))


def lora_tables(image_shards: Mapping, shape_shards: Mapping, discriminative_dir,
                kinds: Sequence[str], out_dir, base_references: Mapping | None = None) -> None:
    """Reconstruction (with the base field's reference rows of the datasets in
    ``base_references``, {dataset: [store] or store}; an empty list = not run) and
    discriminative tables."""
    from nfws.eval.mlora_tables import discriminative_table, reconstruction_table

    out_dir = Path(out_dir)
    refs = {}
    for dataset, paths in (base_references or {}).items():
        paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
        if len(paths) > 1:
            raise ValueError(f"lora_tables: {len(paths)} base references for {dataset}: {paths}")
        if paths:
            refs[dataset] = paths[0]
    reconstruction_table(dict(image_shards), dict(shape_shards),
                         out_dir / "mlora_reconstruction.csv", out_dir / "mlora_reconstruction.md",
                         image_base=refs.get("faces"), shape_base=refs.get("shapenet"))
    discriminative_table([Path(discriminative_dir) / f"{k}.parquet" for k in kinds],
                         out_dir / "mlora_discriminative.csv", out_dir / "mlora_discriminative.md")


# ----- diffusion ----------------------------------------------------------------------
def variant_kind(variant: str) -> tuple[str, str]:
    """(representation, denoiser) of a diffusion variant."""
    if variant == ABLATION:
        return "mlora_asym", "dit"
    return variant, "auto"


def _with_device(cfg: Mapping, device) -> dict:
    return {**cfg, "device": str(device)}


def train_extractor(targets, manifest, cfg: Mapping, seed: int, out_path, device) -> dict:
    """Train our extractor, or record the configured external one (``checkpoint``)."""
    from nfws.models.feature_extractors import prepare_feature_extractor

    return prepare_feature_extractor(targets, manifest, _with_device(cfg, device), out_path, seed)


def train_weight_diffusion(variant: str, shards: Sequence, manifest, cfg: Mapping, seed: int,
                           out_path, device) -> dict:
    from nfws.fit.diffusion import train_diffusion

    _, denoiser = variant_kind(variant)
    return train_diffusion(list(shards), _with_device(cfg, device), out_path, seed, manifest,
                           denoiser=denoiser)


def generate_and_score(dataset: str, model, shards: Sequence, base, targets, manifest, extractor,
                       gen_cfg: Mapping, extractor_cfg: Mapping, seed: int, samples_path,
                       grid_png, metrics_path, device) -> dict:
    """Sample weights, decode them into fields (on the frozen base for LoRA kinds), render
    or mesh them, and score them against the held-out ground truth."""
    from nfws.eval.generation import evaluate_generation, generate
    from nfws.fit.instances import load_fitted

    modality = DATASETS[dataset]
    rep, _, _ = load_fitted(list(shards), base)

    def instantiate(weights):
        params = rep.unflatten(weights)
        return lambda points: rep.forward(params, points)

    generate(model, instantiate, modality, dict(gen_cfg), seed, samples_path, grid_png)
    return evaluate_generation(samples_path, targets, manifest, extractor, metrics_path,
                               dict(gen_cfg), _with_device(extractor_cfg, device), seed)


def published_generation_dataset(dataset: str, classes: Sequence[str]) -> str | None:
    """The paper's generation table for our data: FFHQ for faces; for shapes
    ShapeNet-Multi (several classes) or the single category's table (None if it has none)."""
    check_dataset(dataset)
    if dataset == "faces":
        return "FFHQ"
    if len(classes) > 1:
        return "ShapeNet-Multi"
    return SINGLE_CATEGORY_TABLES.get(classes[0]) if classes else None


def generation_table(metrics: Mapping[str, object], dataset: str, csv_path, md_path) -> None:
    """Generation table of one dataset, beside the paper table matching its classes."""
    from nfws.eval.generation_tables import write_generation_table

    classes = sorted({c for path in metrics.values()
                      for c in json.loads(Path(path).read_text()).get("classes", [])})
    write_generation_table(dict(metrics), dataset,
                           published_generation_dataset(dataset, classes), csv_path, md_path)
