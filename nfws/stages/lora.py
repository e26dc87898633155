"""Track B stage entry points: targets, base fields, instance fitting, metrics, diffusion.

One function per Snakemake job. Per-dataset settings (``lora.datasets.{dataset}``) are
merged into the shared ``base`` / ``fit`` sections here, so the rules pass whole config
sections through ``params:`` and a changed value reruns exactly its dependants.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from nfws.data.targets import build_image_targets, build_shape_targets
from nfws.eval.discriminative import discriminative_metrics
from nfws.eval.generation import evaluate_generation, generate
from nfws.eval.generation_tables import write_generation_table
from nfws.eval.mlora_tables import discriminative_table, reconstruction_table, structure_table
from nfws.eval.structure import plot_structure
from nfws.fit.diffusion import train_diffusion
from nfws.fit.instances import load_fitted
from nfws.models.feature_extractors import train_feature_extractor

#: The modality of each dataset's targets and the published table it compares against.
DATASETS = {"faces": ("image", "FFHQ"), "shapenet": ("occupancy", "ShapeNet-Multi")}
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
    """The fitting section with the dataset's frequency and MLP initialisation rule."""
    entry = lora["datasets"][dataset]
    return {**lora["fit"], "omega0": float(entry["omega0"]),
            "mlp_template_init": bool(entry["mlp_template_init"])}


def build_targets(dataset: str, source, target_cfg: Mapping, seed: int, out_path) -> None:
    """Images (faces: ``source`` = images store) or occupancy samples (shapenet:
    ``source`` = manifest) that every representation is fitted to."""
    check_dataset(dataset)
    if dataset == "faces":
        build_image_targets(source, out_path, int(target_cfg["resolution"]),
                            target_cfg.get("n_instances"))
    else:
        build_shape_targets(source, out_path, dict(target_cfg), seed)


def structure_outputs(csv_paths: Sequence, out_png, csv_path, md_path, dataset: str) -> None:
    plot_structure(list(csv_paths), out_png, f"weight-space structure ({dataset})")
    structure_table(list(csv_paths), csv_path, md_path)


def discriminative(kind_shards: Mapping[str, Sequence], cfg: Mapping, seed: int, out_dir) -> None:
    """Scores over seeded random splits for each representation, plus its t-SNE plot."""
    out_dir = Path(out_dir)
    for kind, shards in kind_shards.items():
        discriminative_metrics(list(shards), dict(cfg), out_dir / f"{kind}.parquet", seed,
                               out_dir / f"tsne_{kind}.png")


def lora_tables(image_shards: Mapping, shape_shards: Mapping, discriminative_dir,
                kinds: Sequence[str], out_dir) -> None:
    out_dir = Path(out_dir)
    reconstruction_table(dict(image_shards), dict(shape_shards),
                         out_dir / "mlora_reconstruction.csv", out_dir / "mlora_reconstruction.md")
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
    return train_feature_extractor(targets, manifest, _with_device(cfg, device), out_path, seed)


def train_weight_diffusion(variant: str, shards: Sequence, manifest, cfg: Mapping, seed: int,
                           out_path, device) -> dict:
    _, denoiser = variant_kind(variant)
    return train_diffusion(list(shards), _with_device(cfg, device), out_path, seed, manifest,
                           denoiser=denoiser)


def generate_and_score(dataset: str, model, shards: Sequence, base, targets, manifest, extractor,
                       gen_cfg: Mapping, extractor_cfg: Mapping, seed: int, samples_path,
                       grid_png, metrics_path, device) -> dict:
    """Sample weights, decode them into fields (on the frozen base for LoRA kinds), render
    or mesh them, and score them against the held-out ground truth."""
    modality, _ = DATASETS[dataset]
    rep, _, _ = load_fitted(list(shards), base)

    def instantiate(weights):
        params = rep.unflatten(weights)
        return lambda points: rep.forward(params, points)

    generate(model, instantiate, modality, dict(gen_cfg), seed, samples_path, grid_png)
    return evaluate_generation(samples_path, targets, manifest, extractor, metrics_path,
                               dict(gen_cfg), _with_device(extractor_cfg, device), seed)


def generation_table(metrics: Mapping[str, object], dataset: str, csv_path, md_path) -> None:
    _, published = DATASETS[dataset]
    write_generation_table(dict(metrics), dataset, published, csv_path, md_path)
