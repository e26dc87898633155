"""Track A stage entry points: encoder training, embedding, classification, retrieval.

Each function is one Snakemake job: it takes paths and config sections, wires the
library pieces (graph dataset, teacher NeRFs, encoder loop, downstream evaluation) and
writes the job's outputs. The rules and scripts stay thin; the smoke run exercises
every function here.

Each entry point imports its stage's modules when it is called: the rule files import
this module for its config helpers, and a job then pays only for its own imports
(torch_geometric, sklearn and matplotlib together cost seconds per job).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd


#: Table 5 baselines: the method name printed in the table and the family it reads.
BASELINE_METHODS = {"nf2vec": ("nf2vec", "MLP"), "cardace": ("Cardace2024", "TRI")}


def family_archs(trainset: str, archs: Mapping[str, dict], train_archs: Sequence[str]) -> list[str]:
    """Architectures an encoder trained on ``trainset`` embeds: ALL -> every one; an
    architecture -> itself and the unseen architectures of its family."""
    if trainset == "ALL":
        return list(archs)
    if trainset not in train_archs:
        raise ValueError(f"config gmn.single_arch_sets: {trainset!r} is not a training architecture")
    family = archs[trainset]["family"]
    return [a for a, entry in archs.items()
            if a == trainset or (a not in train_archs and entry["family"] == family)]


def training_archs(trainset: str, train_archs: Sequence[str]) -> list[str]:
    return list(train_archs) if trainset == "ALL" else [trainset]


def _encoder_cfg(gmn: Mapping, loss: str, seed: int, encoder: Mapping | None = None) -> dict:
    cfg = dict(gmn["train"])
    if encoder is not None:
        cfg["encoder"] = dict(encoder)
    return {**cfg, "loss": loss, "seed": int(seed)}


def train_gmn(loss: str, graph_shards: Sequence, nerf_shards: Sequence, views_store, manifest,
              gmn: Mapping, seed: int, model_path, checkpoint_path, log_path, device) -> dict:
    """Train the GMN encoder (+ nf2vec decoder) with ``loss`` on the given graph shards."""
    from nfws.fit.encoder import ViewRays, dataset_inputs, shard_teacher, train_encoder
    from nfws.graphs.dataset import GraphDataset

    inputs = dataset_inputs(GraphDataset(list(graph_shards), manifest, device=device))
    rays = ViewRays.from_zarr(views_store)
    teacher = shard_teacher(list(nerf_shards), int(gmn["teacher_samples_per_ray"]), device)
    return train_encoder(_encoder_cfg(gmn, loss, seed), inputs, model_path, rays=rays,
                         teacher=teacher, checkpoint_path=checkpoint_path,
                         input_files=[*graph_shards, *nerf_shards, views_store, manifest],
                         log_path=log_path, device=device)


def embed_gmn(model_path, graph_shards: Mapping[str, Sequence], manifest, out_dir,
              batch_size: int, device) -> None:
    """Embed every NeRF of each architecture: ``out_dir/{arch}.parquet``."""
    from nfws.fit.encoder import dataset_inputs, embed
    from nfws.graphs.dataset import GraphDataset

    out_dir = Path(out_dir)
    for arch, shards in graph_shards.items():
        inputs = dataset_inputs(GraphDataset(list(shards), manifest, device=device))
        embed(model_path, inputs, out_dir / f"{arch}.parquet", batch_size=batch_size, device=device)


def embedding_paths(embeddings_dir, archs: Sequence[str]) -> dict[str, Path]:
    paths = {a: Path(embeddings_dir) / f"{a}.parquet" for a in archs}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(f"embeddings missing: {missing}")
    return paths


def classify_all(loss: str, embeddings_dir, archs: Sequence[str], train_archs: Sequence[str],
                 clf_cfg: Mapping, out_path, device) -> pd.DataFrame:
    """Tables 8 / 9: classifiers trained on ALL and on each training architecture, tested
    on every architecture, over the embeddings of the encoder trained on ALL."""
    from nfws.data.manifest import CLASS_NAMES
    from nfws.eval.classify import classify

    train_sets = {"ALL": list(train_archs), **{a: [a] for a in train_archs}}
    return classify(embedding_paths(embeddings_dir, archs), train_sets, list(archs), clf_cfg,
                    len(CLASS_NAMES), out_path=out_path,
                    context={"encoder_loss": loss, "encoder_train": "ALL"}, device=device)


def classify_single(trainset: str, embeddings_dir, archs: Sequence[str], clf_cfg: Mapping,
                    out_path, device, method: str = "GMN L_R") -> pd.DataFrame:
    """Table 5: encoder and classifier trained on one architecture, tested on its family."""
    from nfws.data.manifest import CLASS_NAMES
    from nfws.eval.classify import classify

    return classify(embedding_paths(embeddings_dir, archs), {trainset: [trainset]}, list(archs),
                    clf_cfg, len(CLASS_NAMES), out_path=out_path, context={"method": method},
                    device=device)


def run_baseline(name: str, nerf_shards: Mapping[str, Sequence], views_store, manifest,
                 gmn: Mapping, clf_cfg: Mapping, seed: int, out_dir, device) -> pd.DataFrame:
    """A Table-5 baseline: train on its family's training architecture with the rendering
    loss, embed every architecture it can read, classify; ``out_dir`` gets the model,
    embeddings and ``classification.parquet``."""
    from nfws.fields.spec import ArchSpec
    from nfws.fit.encoder import ViewRays, embed, param_inputs, shard_teacher, train_encoder
    from nfws.models.baselines import can_encode
    from nfws.store import read_parquet

    if name not in BASELINE_METHODS:
        raise ValueError(f"config gmn.baselines: unknown baseline {name!r}; known {sorted(BASELINE_METHODS)}")
    method, trainset = BASELINE_METHODS[name]
    out_dir = Path(out_dir)
    manifest_df = read_parquet(manifest)
    encoder = gmn["baselines"][name]
    readable = {a: s for a, s in nerf_shards.items()
                if can_encode(encoder, ArchSpec.from_dict(a, _arch_entry(s)))}
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


def _arch_entry(shards: Sequence) -> dict:
    from nfws.store import open_zarr

    attrs = dict(open_zarr(shards[0]).attrs)
    if "arch" not in attrs:
        raise ValueError(f"{shards[0]}: attrs lack 'arch'")
    entry = dict(attrs["arch"])
    entry.pop("name", None)
    return entry


def retrieve(loss: str, embeddings_dir, train_archs: Sequence[str], ret_cfg: Mapping, out_path) -> pd.DataFrame:
    """Table 10: instance retrieval across the training architectures."""
    from nfws.eval.retrieval import retrieval

    pairs = [tuple(p) for p in ret_cfg["pairs"]]
    return retrieval(embedding_paths(embeddings_dir, train_archs), pairs, list(train_archs),
                     ks=tuple(ret_cfg["ks"]), metric=ret_cfg["metric"], out_path=out_path,
                     context={"encoder_loss": loss})


def tsne(loss: str, embeddings_dir, train_archs: Sequence[str], tsne_cfg: Mapping, out_png) -> None:
    from nfws.data.manifest import CLASS_NAMES
    from nfws.eval.tsne import tsne_plot

    tsne_plot(embedding_paths(embeddings_dir, train_archs), list(train_archs), out_png,
              f"GMN embeddings ({loss}), test split", list(CLASS_NAMES),
              seed=int(tsne_cfg["seed"]), perplexity=float(tsne_cfg["perplexity"]))


def centroid_table(encoders: Sequence[tuple[str, str]], embedding_dirs: Sequence,
                   archs: Mapping[str, dict], train_archs: Sequence[str]) -> pd.DataFrame:
    """Centroid shifts (:mod:`nfws.eval.centroids`) of every encoder (loss, trainset) whose
    embeddings directory is the matching entry of ``embedding_dirs``."""
    from nfws.eval.centroids import centroid_shifts
    from nfws.eval.embeddings import load_embeddings

    if len(encoders) != len(embedding_dirs):
        raise ValueError(f"{len(encoders)} encoders but {len(embedding_dirs)} embeddings directories")
    frames = []
    for (loss, trainset), directory in zip(encoders, embedding_dirs):
        tables = load_embeddings(embedding_paths(directory, family_archs(trainset, archs, train_archs)))
        shifts = centroid_shifts(tables, training_archs(trainset, train_archs))
        frames.append(shifts.assign(loss=loss, trained_on=trainset))
    return pd.concat(frames, ignore_index=True)


def tables(classification: Sequence, single: Sequence, retrieval_paths: Sequence, centroids: pd.DataFrame,
           out_dir, train_archs: Sequence[str], unseen_archs: Sequence[str]) -> None:
    """Every GMN table from the per-job result files."""
    from nfws.eval.gmn_tables import write_gmn_tables
    from nfws.store import read_parquet

    def cat(paths):
        return pd.concat([read_parquet(p) for p in paths], ignore_index=True)

    write_gmn_tables(cat(classification), cat(single), cat(retrieval_paths), centroids, out_dir,
                     seen_archs=list(train_archs), unseen_archs=list(unseen_archs))
