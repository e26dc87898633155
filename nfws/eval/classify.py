"""Downstream classification of NeRF embeddings (paper §4.2, Tables 4/5/8/9).

A classifier is trained on the *train* split of one set of embeddings (one architecture,
or ALL = the union of the training architectures) and tested on the *test* split of each
requested architecture; the val split is not used. Embeddings are standardised per
dimension, with the classifier's training-set statistics (the paper's protocol) or with each
architecture's own (:func:`nfws.eval.embeddings.scalers`). The network and schedule are those of
nf2vec: 3 x (Linear -> BatchNorm -> ReLU -> Dropout) then a linear head, cross-entropy,
AdamW with a one-cycle schedule.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from nfws.config_files import Section
from nfws.device import pick_device
from nfws.eval.embeddings import STATISTICS, embedding_matrix, load_embeddings, scalers, select
from nfws.batches import shuffled_batches
from nfws.store import write_parquet


@dataclass(frozen=True)
class ClassifierConfig(Section):
    """The ``gmn.classifier`` section: the MLP head, its schedule, seeds and the
    standardisations to run (:func:`nfws.eval.embeddings.scalers`)."""

    SECTION = "gmn.classifier"
    widths: tuple
    dropout: float
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    seeds: tuple
    statistics: tuple

    def check(self, section: str) -> None:
        if int(self.epochs) < 1:
            self.bad(section, "epochs", "must be >= 1")
        if int(self.batch_size) < 2:
            self.bad(section, "batch_size", "must be >= 2")
        if not self.seeds:
            self.bad(section, "seeds", "needs at least one seed")
        if not self.statistics or not set(self.statistics) <= set(STATISTICS):
            self.bad(section, "statistics", f"must be a non-empty subset of {STATISTICS}")


class Classifier(nn.Module):
    def __init__(self, d_in: int, n_classes: int, widths: Sequence[int], dropout: float):
        super().__init__()
        layers, d = [], d_in
        for w in widths:
            layers += [nn.Linear(d, w), nn.BatchNorm1d(w), nn.ReLU(), nn.Dropout(dropout)]
            d = w
        layers.append(nn.Linear(d, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def train_classifier(x: np.ndarray, y: np.ndarray, n_classes: int, cfg: ClassifierConfig,
                     seed: int, device=None) -> Classifier:
    """Fit a classifier on features x [n, d] and labels y [n] (ints in [0, n_classes))."""
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"classifier: need >= 2 matching samples, got {len(x)} features and {len(y)} labels")
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"classifier: labels outside [0, {n_classes})")
    device = pick_device(device)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = Classifier(x.shape[1], n_classes, cfg.widths, float(cfg.dropout)).to(device)
    xt = torch.tensor(x, dtype=torch.float32, device=device)
    yt = torch.tensor(y, dtype=torch.long, device=device)
    epochs, bs = int(cfg.epochs), int(cfg.batch_size)
    steps = len(shuffled_batches(len(x), bs, rng))
    opt = torch.optim.AdamW(model.parameters(), lr=float(cfg.lr), weight_decay=float(cfg.weight_decay))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=float(cfg.lr), total_steps=epochs * steps)
    model.train()
    for _ in range(epochs):
        for batch in shuffled_batches(len(x), bs, rng):
            loss = nn.functional.cross_entropy(model(xt[batch]), yt[batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


@torch.no_grad()
def predict(model: Classifier, x: np.ndarray) -> np.ndarray:
    device = next(model.parameters()).device
    return model(torch.as_tensor(x, dtype=torch.float32, device=device)).argmax(-1).cpu().numpy()


def classify(embedding_paths: Mapping[str, object], train_sets: Mapping[str, Sequence[str]],
             test_archs: Sequence[str], cfg, n_classes: int, out_path=None,
             context: Mapping[str, str] | None = None, device=None) -> pd.DataFrame:
    """Train one classifier per (statistics, train set, seed) and test it on every test
    architecture.

    A fit depends only on its features, labels and seed, so a train set whose
    standardised features are the same under two statistics (one architecture's train
    split, under ``train_set`` and ``per_arch``) is fitted once per seed and reused.

    embedding_paths: {arch: parquet}; train_sets: {name: archs}, e.g. {"ALL": [MLP, TRI,
    HASH], "MLP": [MLP]}; test_archs: architectures whose test split is scored;
    ``cfg``: the ``gmn.classifier`` section (a mapping is checked as
    :class:`ClassifierConfig`). Returns (and writes to ``out_path``) rows:
    context columns, statistics, classifier_train, test_arch, seed, accuracy (%), n_test.
    """
    cfg = ClassifierConfig.from_dict(cfg)
    tables = load_embeddings(embedding_paths)
    rows, fitted = [], {}
    bar = tqdm(total=len(cfg.statistics) * len(train_sets) * len(cfg.seeds), desc="classify")
    for stats in cfg.statistics:
        for name, archs in train_sets.items():
            scale = scalers(tables, archs, stats)
            train = [select(tables, [arch], "train") for arch in archs]
            x = np.concatenate([scale[arch](embedding_matrix(df))
                                for arch, df in zip(archs, train)])
            y = np.concatenate([df["class_index"].to_numpy() for df in train])
            tests = {arch: select(tables, [arch], "test") for arch in test_archs}
            features = {arch: scale[arch](embedding_matrix(df)) for arch, df in tests.items()}
            for seed in cfg.seeds:
                earlier = fitted.get((name, int(seed)))
                if earlier is not None and np.array_equal(earlier[0], x):
                    model = earlier[1]
                else:
                    model = train_classifier(x, y, n_classes, cfg, int(seed), device)
                    fitted[name, int(seed)] = (x, model)
                for arch, test in tests.items():
                    pred = predict(model, features[arch])
                    acc = 100.0 * float((pred == test["class_index"].to_numpy()).mean())
                    rows.append({**(context or {}), "statistics": stats, "classifier_train": name,
                                 "test_arch": arch, "seed": int(seed), "accuracy": acc,
                                 "n_test": len(test)})
                bar.update()
    bar.close()
    result = pd.DataFrame(rows)
    if out_path is not None:
        write_parquet(result, out_path)
    return result
