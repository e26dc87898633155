"""Track A's jobs: one function per rule of ``workflow/rules/gmn.smk``, each called with
the rule's ``snakemake`` object by the script of the same name.

A job function unpacks the rule's inputs, params and wildcards, sets the job up (log,
threads, seed, device) and calls the library: graph conversion, encoder training
(:mod:`nfws.gmn.train`), embedding, and the downstream evaluation
(:mod:`nfws.gmn.evaluate`). Modules are imported when a job runs, so a job pays only
for its own imports (torch_geometric, sklearn and matplotlib together cost seconds).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd

from nfws.device import choose_device, job_device
from nfws.gmn.config import BASELINE_METHODS
from nfws.runlog import script_setup
from nfws.store import group_by_parent


def graphs(smk) -> None:
    """One NeRF shard as a shard of parameter graphs."""
    from nfws.graphs.store import convert_shard

    with script_setup(smk):
        convert_shard(smk.input[0], smk.output[0])


def train_encoder(smk) -> None:
    """The GMN encoder (+ nf2vec decoder) trained with one loss on one training set."""
    p, i, o = smk.params, smk.input, smk.output
    with script_setup(smk, p.seed), job_device(p.device, p.lock_dir) as device:
        train_gmn(smk.wildcards.loss, i.graphs, i.nerfs, i.views, i.manifest, p.gmn, p.seed,
                  o.model, p.checkpoint, o.log, device)


def embed(smk) -> None:
    """Embeddings of every NeRF an encoder reads, one table per architecture."""
    p, i = smk.params, smk.input
    with script_setup(smk), job_device(p.device, p.lock_dir) as device:
        embed_gmn(i.model, group_by_parent(i.graphs, p.archs), i.manifest, smk.output[0],
                  p.batch_size, device, p.reference, p.seed)


def classify_all(smk) -> None:
    """Tables 8 / 9 over the embeddings of the encoder trained on ALL."""
    from nfws.gmn import evaluate

    p = smk.params
    with script_setup(smk):
        evaluate.classify_all(smk.wildcards.loss, smk.input[0], p.archs, p.train_archs,
                              p.classifier, smk.output[0], choose_device(p.device))


def classify_single(smk) -> None:
    """Table 5: an encoder trained on one architecture, tested on its family."""
    from nfws.gmn import evaluate

    p = smk.params
    with script_setup(smk):
        evaluate.classify_single(smk.wildcards.trainset, smk.input[0], p.archs, p.classifier,
                                 smk.output[0], choose_device(p.device))


def baseline(smk) -> None:
    """A Table 5 baseline: trained, embedded and classified."""
    p, i = smk.params, smk.input
    with script_setup(smk, p.seed), job_device(p.device, p.lock_dir) as device:
        run_baseline(smk.wildcards.baseline, group_by_parent(i.nerfs), i.views, i.manifest,
                     p.gmn, p.classifier, p.seed, Path(smk.output.model).parent, device)


def retrieve(smk) -> None:
    """Table 10: instance retrieval across the training architectures."""
    from nfws.gmn import evaluate

    p = smk.params
    with script_setup(smk):
        evaluate.retrieve(smk.wildcards.loss, smk.input[0], p.train_archs, p.retrieval,
                          smk.output[0])


def tsne(smk) -> None:
    """t-SNE of one encoder's test embeddings."""
    from nfws.gmn import evaluate

    p = smk.params
    with script_setup(smk):
        evaluate.tsne(smk.wildcards.loss, smk.input[0], p.train_archs, p.tsne, smk.output[0])


def gmn_tables(smk) -> None:
    """Every GMN table, ours beside the published numbers."""
    from nfws.gmn.evaluate import centroid_table, tables

    p, i = smk.params, smk.input
    with script_setup(smk):
        centroids = centroid_table(p.encoders, i.embeddings, p.architectures, p.train_archs)
        tables(i.classification, i.single, i.retrieval, centroids, Path(smk.output[0]).parent,
               p.train_archs, p.unseen_archs)


def _encoder_cfg(gmn: Mapping, loss: str, seed: int, encoder: Mapping | None = None) -> dict:
    cfg = dict(gmn["train"])
    if encoder is not None:
        cfg["encoder"] = dict(encoder)
    return {**cfg, "loss": loss, "seed": int(seed)}


def train_gmn(loss: str, graph_shards: Sequence, nerf_shards: Sequence, views_store, manifest,
              gmn: Mapping, seed: int, model_path, checkpoint_path, log_path, device) -> dict:
    """Train the GMN encoder (+ nf2vec decoder) with ``loss`` on the given graph shards."""
    from nfws.gmn.train import ViewRays, dataset_inputs, shard_teacher, train_encoder
    from nfws.graphs.dataset import GraphDataset

    inputs = dataset_inputs(GraphDataset(list(graph_shards), manifest, device=device))
    rays = ViewRays.from_zarr(views_store)
    teacher = shard_teacher(list(nerf_shards), int(gmn["teacher_samples_per_ray"]), device)
    return train_encoder(_encoder_cfg(gmn, loss, seed), inputs, model_path, rays=rays,
                         teacher=teacher, checkpoint_path=checkpoint_path,
                         input_files=[*graph_shards, *nerf_shards, views_store, manifest],
                         log_path=log_path, device=device)


def embed_gmn(model_path, graph_shards: Mapping[str, Sequence], manifest, out_dir,
              batch_size: int, device, reference: str = "none", seed: int = 0) -> None:
    """Embed every NeRF of each architecture: ``out_dir/{arch}.parquet``; ``reference``
    ``init`` centres each on its architecture's initial draw of ``seed``
    (:mod:`nfws.gmn.reference`)."""
    from nfws.gmn.reference import REFERENCES, reference_batcher
    from nfws.gmn.embed import embed
    from nfws.gmn.train import dataset_inputs
    from nfws.graphs.dataset import GraphDataset

    if reference not in REFERENCES:
        raise ValueError(f"config gmn.embed_reference: must be one of {list(REFERENCES)}, got {reference!r}")
    out_dir = Path(out_dir)
    for arch, shards in graph_shards.items():
        dataset = GraphDataset(list(shards), manifest, device=device)
        embed(model_path, dataset_inputs(dataset), out_dir / f"{arch}.parquet",
              batch_size=batch_size, device=device,
              reference=reference_batcher(dataset, seed) if reference == "init" else None)


def run_baseline(name: str, nerf_shards: Mapping[str, Sequence], views_store, manifest,
                 gmn: Mapping, clf_cfg: Mapping, seed: int, out_dir, device) -> pd.DataFrame:
    """A Table-5 baseline: train on its family's training architecture with the rendering
    loss, embed every architecture it can read, classify; ``out_dir`` gets the model,
    embeddings and ``classification.parquet``."""
    from nfws.gmn.baselines import can_encode
    from nfws.gmn.evaluate import classify_single
    from nfws.gmn.embed import embed
    from nfws.gmn.train import ViewRays, param_inputs, shard_teacher, train_encoder
    from nfws.data.manifest import read_manifest

    if name not in BASELINE_METHODS:
        raise ValueError(f"config gmn.baselines: unknown baseline {name!r}; known {sorted(BASELINE_METHODS)}")
    method, trainset = BASELINE_METHODS[name]
    out_dir = Path(out_dir)
    manifest_df = read_manifest(manifest)
    encoder = gmn["baselines"][name]
    readable = {a: s for a, s in nerf_shards.items()
                if can_encode(encoder, _shard_spec(a, s))}
    if trainset not in readable:
        raise ValueError(f"config gmn.baselines.{name}: cannot read its training architecture {trainset}")
    rays = ViewRays.from_zarr(views_store)
    teacher = shard_teacher(list(nerf_shards[trainset]), int(gmn["teacher_samples_per_ray"]), device)
    model = out_dir / "model.pt"
    train_encoder(_encoder_cfg(gmn, "L_R", seed, encoder), param_inputs(nerf_shards[trainset], manifest_df),
                  model, rays=rays, teacher=teacher, checkpoint_path=out_dir / "checkpoint.pt",
                  input_files=[*nerf_shards[trainset], views_store, manifest],
                  log_path=out_dir / "log.json", device=device)
    for arch, shards in readable.items():
        embed(model, param_inputs(shards, manifest_df), out_dir / "embeddings" / f"{arch}.parquet",
              device=device)
    return classify_single(trainset, out_dir / "embeddings", list(readable), clf_cfg,
                           out_dir / "classification.parquet", device, method=method)


def _shard_spec(arch: str, shards: Sequence):
    """The ArchSpec of an architecture's NeRFs (its first shard's attrs), named ``arch``."""
    from nfws.fields.shard import read_nerf_shard

    return replace(read_nerf_shard(shards[0], params=False, arrays=()).spec, name=arch)
