"""Embedding tables of NeRF encoders: reading, selecting, stacking and standardising them.

An embeddings parquet has one row per NeRF (object_id, arch, split, class_index, emb);
classification, retrieval and t-SNE all read them through these functions.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from nfws.store import read_parquet

EMB_COLUMNS = ["object_id", "arch", "split", "class_index", "emb"]


def load_embeddings(paths: Mapping[str, object]) -> dict[str, pd.DataFrame]:
    """{arch: embeddings parquet path} -> {arch: table}, checking columns and arch names."""
    out = {}
    for arch, path in paths.items():
        df = read_parquet(path, EMB_COLUMNS)
        wrong = set(df["arch"]) - {arch}
        if wrong:
            raise ValueError(f"{path}: expected arch {arch!r} only, found {sorted(wrong)}")
        out[arch] = df
    return out


def select(tables: Mapping[str, pd.DataFrame], archs: Sequence[str], split: str) -> pd.DataFrame:
    missing = [a for a in archs if a not in tables]
    if missing:
        raise KeyError(f"no embeddings for architectures {missing}")
    df = pd.concat([tables[a] for a in archs], ignore_index=True)
    df = df[df["split"] == split].reset_index(drop=True)
    if df.empty:
        raise ValueError(f"no {split} embeddings for architectures {list(archs)}")
    return df


def standardiser(train: np.ndarray, eps: float = 1e-12):
    """Per-dimension z-score with the statistics of ``train``.

    Encoder embeddings vary across NeRFs in small directions around a large common
    offset (a mean over tens of thousands of edges); unscaled, those differences fall
    below BatchNorm's epsilon and cosine similarity's resolution. Standardising with
    training-split statistics only is the usual probe protocol and uses no test data.
    A dimension constant over ``train`` (standard deviation <= ``eps``: a readout unit
    that no training NeRF activates) is only centred, as scikit-learn's StandardScaler
    does: it carries no information, and dividing by ``eps`` would turn rounding noise
    in another architecture into inputs of order 1e4.
    """
    train = np.asarray(train, np.float64)
    mean, std = train.mean(0), train.std(0)
    scale = np.where(std > eps, std, 1.0)
    return lambda x: ((np.asarray(x, np.float64) - mean) / scale).astype(np.float32)


#: How embeddings are standardised before a classifier sees them (see :func:`scalers`).
STATISTICS = ("train_set", "per_arch")


def scalers(tables: Mapping[str, pd.DataFrame], train_archs: Sequence[str], statistics: str) -> dict:
    """{arch: standardiser} for every architecture of ``tables``.

    ``train_set``: one standardiser for all, from the train split of ``train_archs`` (the
    paper's protocol: nothing about a test architecture is used).
    ``per_arch``: each architecture standardised with its own statistics, as test-time
    BatchNorm adaptation does (AdaBN, Li et al. 2016): its train split when it has one,
    else all its NeRFs (an unseen architecture has test NeRFs only; their embeddings are
    used unlabelled, so this protocol is transductive for it). A pooled readout carries a
    per-architecture offset that no training architecture shows; this removes it.
    """
    if statistics == "train_set":
        scale = standardiser(embedding_matrix(select(tables, train_archs, "train")))
        return {arch: scale for arch in tables}
    if statistics == "per_arch":
        out = {}
        for arch, df in tables.items():
            own = df[df["split"] == "train"] if (df["split"] == "train").any() else df
            out[arch] = standardiser(embedding_matrix(own, f"{arch} embeddings"))
        return out
    raise ValueError(f"embedding statistics {statistics!r} unknown; choose one of {STATISTICS}")


def embedding_matrix(df: pd.DataFrame, what: str = "embeddings") -> np.ndarray:
    """Stack the ``emb`` column of an embeddings table into [n, d]."""
    if "emb" not in df.columns:
        raise ValueError(f"{what}: no 'emb' column")
    if len(df) == 0:
        raise ValueError(f"{what}: empty table")
    return np.stack([np.asarray(e, dtype=np.float32) for e in df["emb"]])
