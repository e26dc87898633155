"""Track B's jobs: one function per rule of ``workflow/rules/mlora.smk``, each called with
the rule's ``snakemake`` object by the script of the same name.

A job function unpacks the rule's inputs, params and wildcards, sets the job up (log,
threads, seed, device) and calls the library: targets, the base field, instance fitting
(:mod:`nfws.mlora.train`), weight-space structure, weight diffusion and the evaluation
(:mod:`nfws.mlora.evaluate`). Per-dataset settings are merged into the shared sections by
the workflow's plan (:mod:`nfws.mlora.config`), so the rules pass whole sections through
``params:``. Modules are imported when a job runs: a job pays only for its own imports.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from nfws.device import job_device
from nfws.mlora.config import DATASETS, check_dataset, variant_kind
from nfws.runlog import script_setup
from nfws.store import group_by_parent


def lora_shape_manifest(smk) -> None:
    """The manifest of the 3D shapes track B fits: the data manifest's objects or real onet
    / mesh shapes, optionally one category."""
    from nfws.data.shape_sources import build_shape_manifest

    p = smk.params
    with script_setup(smk, p.seed):
        build_shape_manifest(dict(p.shapes), p.seed, smk.output[0],
                             smk.input.get("data_manifest"))


def lora_targets(smk) -> None:
    """What every representation is fitted to: images (faces, from the images store, with
    the data manifest's splits) or occupancy samples (shapes, from the shape manifest)."""
    from nfws.data.targets import build_image_targets, build_shape_targets

    dataset, p = smk.wildcards.dataset, smk.params
    check_dataset(dataset)
    with script_setup(smk, p.seed):
        if dataset == "faces":
            build_image_targets(smk.input.source, smk.output[0], int(p.targets["resolution"]),
                                p.targets.get("n_instances"), smk.input.get("manifest"))
        else:
            build_shape_targets(smk.input.source, smk.output[0], dict(p.targets), p.seed)


def base_field(smk) -> None:
    """The modulated base field, auto-decoded on the training split."""
    from nfws.mlora.base_field import train_base_field

    p = smk.params
    with script_setup(smk, p.seed), job_device(p.device, p.lock_dir) as device:
        train_base_field(smk.input[0], p.base, smk.output[0], p.seed, device=device)


def fit_instances(smk) -> None:
    """One shard of instances fitted with one representation."""
    from nfws.mlora.train import fit_instances as fit

    p, w = smk.params, smk.wildcards
    with script_setup(smk, p.seed), job_device(p.device, p.lock_dir) as device:
        fit(w.repr, smk.input.base, smk.input.targets, p.fit["fit"], smk.output[0], p.seed,
            shard=int(w.shard), n_shards=p.fit["n_shards"], device=device, base_cfg=p.base)


def base_reference(smk) -> None:
    """The base field's reference rows of the reconstruction table: its training latents,
    and latent-only fits of the test split with the representations' schedule."""
    from nfws.mlora.base_reference import base_reference as measure

    p = smk.params
    with script_setup(smk, p.seed), job_device(p.device, p.lock_dir) as device:
        measure(smk.input.base, smk.input.targets, dict(p.fit), smk.output[0], p.seed, device,
                dict(p.base))


def weight_structure(smk) -> None:
    """Stability and linear mode connectivity of one representation's weights."""
    from nfws.mlora.structure import weight_space_structure

    p = smk.params
    with script_setup(smk, p.seed), job_device(p.device, p.lock_dir) as device:
        weight_space_structure(smk.wildcards.repr, smk.input.base, smk.input.targets,
                               p.fit["fit"], p.fit["structure"], smk.output[0], p.seed,
                               device=device, base_cfg=p.base)


def structure_outputs(smk) -> None:
    """The structure plot and table of one dataset."""
    from nfws.mlora import evaluate

    o = smk.output
    with script_setup(smk):
        evaluate.structure_outputs(smk.input, o.plot, o.csv, o.md, smk.wildcards.dataset)


def discriminative(smk) -> None:
    """Clustering and classification probes on every representation's weights."""
    from nfws.mlora import evaluate

    p = smk.params
    with script_setup(smk, p.seed):
        evaluate.discriminative(group_by_parent(smk.input, p.kinds), p.discriminative, p.seed,
                                smk.output[0])


def lora_tables(smk) -> None:
    """The reconstruction and discriminative tables."""
    from nfws.mlora import evaluate

    i = smk.input
    with script_setup(smk):
        evaluate.lora_tables(group_by_parent(i.faces), group_by_parent(i.shapenet),
                             i.discriminative, smk.params.kinds,
                             Path(smk.output.reconstruction).parent,
                             {"faces": i.faces_base, "shapenet": i.shapenet_base})


def base_field_curve(smk) -> None:
    """The base field's training curve beside the representations' reconstruction."""
    from nfws.mlora import evaluate

    with script_setup(smk):
        evaluate.base_field_curve(smk.input.reference,
                                  group_by_parent(smk.input.shards, smk.params.kinds),
                                  smk.output[0], smk.wildcards.dataset)


def feature_extractor(smk) -> None:
    """Train our feature extractor for the generation metrics, or record the configured
    external one (``checkpoint``)."""
    from nfws.mlora.feature_extractors import prepare_feature_extractor

    p, i = smk.params, smk.input
    with script_setup(smk, p.seed), job_device(p.device, p.lock_dir) as device:
        prepare_feature_extractor(i.targets, i.manifest, _with_device(p.extractor, device),
                                  smk.output[0], p.seed)


def train_diffusion(smk) -> None:
    """A weight-space diffusion model on one variant's fitted weights."""
    from nfws.mlora.diffusion import train_diffusion as train

    p, i = smk.params, smk.input
    _, denoiser = variant_kind(smk.wildcards.variant)
    with script_setup(smk, p.seed), job_device(p.device, p.lock_dir) as device:
        train(list(i.shards), _with_device(p.model, device), smk.output[0], p.seed, i.manifest,
              denoiser=denoiser)


def generate(smk) -> None:
    """Samples of one diffusion model, rendered or meshed, and their generation metrics."""
    p, i, o = smk.params, smk.input, smk.output
    with script_setup(smk, p.seed), job_device(p.device, p.lock_dir) as device:
        generate_and_score(smk.wildcards.dataset, i.model, i.shards, i.base, i.targets,
                           i.manifest, i.extractor, p.generation, p.extractor, p.seed, o.samples,
                           o.grid, o.metrics, device)


def generation_table(smk) -> None:
    """The generation table of one dataset, beside the matching paper table."""
    from nfws.mlora import evaluate

    with script_setup(smk):
        metrics = {Path(path).parent.name: path for path in smk.input}
        evaluate.generation_table(metrics, smk.wildcards.dataset, smk.output.csv, smk.output.md)


def _with_device(cfg: Mapping, device) -> dict:
    return {**cfg, "device": str(device)}


def generate_and_score(dataset: str, model, shards: Sequence, base, targets, manifest, extractor,
                       gen_cfg: Mapping, extractor_cfg: Mapping, seed: int, samples_path,
                       grid_png, metrics_path, device) -> dict:
    """Sample weights, decode them into fields (on the frozen base for LoRA kinds), render
    or mesh them, and score them against the held-out ground truth."""
    from nfws.mlora.generation import evaluate_generation, generate
    from nfws.mlora.train import load_fitted

    modality = DATASETS[dataset]
    rep, _, _ = load_fitted(list(shards), base)

    def instantiate(weights):
        params = rep.unflatten(weights)
        return lambda points: rep.forward(params, points)

    generate(model, instantiate, modality, dict(gen_cfg), seed, samples_path, grid_png)
    return evaluate_generation(samples_path, targets, manifest, extractor, metrics_path,
                               dict(gen_cfg), _with_device(extractor_cfg, device), seed)
