"""The GMN's downstream evaluation over embedding tables: classification (Tables 5, 8, 9),
retrieval (Table 10), t-SNE, centroid shifts, and the tables beside the published numbers.

Each function imports its modules when called: a job pays only for its own imports.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from nfws.gmn.config import family_archs, training_archs


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
    """Centroid shifts (:mod:`nfws.gmn.centroids`) of every encoder (loss, trainset) whose
    embeddings directory is the matching entry of ``embedding_dirs``."""
    from nfws.gmn.centroids import centroid_shifts
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
    from nfws.gmn.tables import write_gmn_tables
    from nfws.store import read_parquet

    def cat(paths):
        return pd.concat([read_parquet(p) for p in paths], ignore_index=True)

    write_gmn_tables(cat(classification), cat(single), cat(retrieval_paths), centroids, out_dir,
                     seen_archs=list(train_archs), unseen_archs=list(unseen_archs))
