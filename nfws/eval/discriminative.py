"""Discriminative probes on flattened weights (paper §4.4): clustering and classification.

Per run r (seed + r): a stratified random split (``test_fraction``), features standardised
with the training part's per-column mean/std (constant columns, e.g. frozen entries, keep
std 1); k-means with k = #classes on all instances → adjusted Rand index; 1-NN by cosine
similarity test → train; logistic regression trained on train, scored on test.
Reported as mean ± std over ``n_runs`` runs, in percent.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import train_test_split

from nfws.config_files import Section


@dataclass(frozen=True)
class DiscriminativeConfig(Section):
    """The ``lora.discriminative`` section: repeated stratified splits and the probes'
    iteration budgets."""

    SECTION = "lora.discriminative"
    n_runs: int
    test_fraction: float
    logistic_max_iter: int
    kmeans_n_init: int

    def check(self, section: str) -> None:
        if int(self.n_runs) < 1:
            self.bad(section, "n_runs", "must be >= 1")
        if not 0 < float(self.test_fraction) < 1:
            self.bad(section, "test_fraction", "must lie in (0, 1)")


def standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mean, std = train.mean(0), train.std(0)
    std = np.where(std > 0, std, 1.0)
    return [(a - mean) / std for a in (train, *others)]


def nn1_cosine_accuracy(train_x, train_y, test_x, test_y) -> float:
    """Share of test points whose most cosine-similar training point has their label."""
    a = train_x / np.linalg.norm(train_x, axis=1, keepdims=True).clip(1e-12)
    b = test_x / np.linalg.norm(test_x, axis=1, keepdims=True).clip(1e-12)
    return float((train_y[(b @ a.T).argmax(1)] == test_y).mean())


def logistic_accuracy(train_x, train_y, test_x, test_y, seed: int, max_iter: int) -> float:
    """Test accuracy (fraction) of a logistic regression fitted on the training features,
    both standardised with the training part's statistics."""
    xtr, xte = standardise(train_x, test_x)
    clf = LogisticRegression(max_iter=max_iter, random_state=seed).fit(xtr, train_y)
    return float(clf.score(xte, test_y))


def kmeans_ari(x: np.ndarray, labels: np.ndarray, seed: int, n_init: int) -> float:
    k = len(np.unique(labels))
    pred = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(x)
    return float(adjusted_rand_score(labels, pred))


def discriminative_runs(weights: np.ndarray, labels: np.ndarray, cfg: dict,
                        seed: int) -> pd.DataFrame:
    """One row per run: run, ari, nn1, logistic (fractions in [0, 1]); ``cfg`` is the
    ``lora.discriminative`` section."""
    cfg = DiscriminativeConfig.pick(cfg)
    if len(np.unique(labels)) < 2:
        raise ValueError("discriminative: need at least two classes")
    rows = []
    for run in range(int(cfg.n_runs)):
        s = seed + run
        tr, te = train_test_split(np.arange(len(labels)), test_size=cfg.test_fraction,
                                  stratify=labels, random_state=s)
        xtr, xte, xall = standardise(weights[tr], weights[te], weights)
        rows.append({"run": run, "ari": kmeans_ari(xall, labels, s, int(cfg.kmeans_n_init)),
                     "nn1": nn1_cosine_accuracy(xtr, labels[tr], xte, labels[te]),
                     "logistic": logistic_accuracy(weights[tr], labels[tr], weights[te],
                                                   labels[te], s, int(cfg.logistic_max_iter))})
    return pd.DataFrame(rows)
