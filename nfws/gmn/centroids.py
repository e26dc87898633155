"""How far each architecture's test embeddings sit from an encoder's training distribution.

For an encoder whose classifier trains on the train split of architectures A, the shift
of architecture a is ``||(mean_test(a) - mean_train(A)) / std_train(A)||_2``: the distance
of a's mean test embedding from the training embeddings' mean, in per-dimension training
standard deviations. The mean of n NeRFs drawn from the training distribution itself lies
about ``sqrt(d / n)`` away (the norm of a mean of n standardised d-dimensional vectors),
printed beside it; a variant whose embeddings carry an architecture offset lies far beyond.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from nfws.eval.embeddings import embedding_matrix, select, standardiser

COLUMNS = ["arch", "n_test", "shift_sd", "same_distribution_sd"]


def centroid_shifts(tables: Mapping[str, pd.DataFrame], train_archs: Sequence[str]) -> pd.DataFrame:
    """One row per architecture of ``tables``: its test NeRFs' shift from the train split of
    ``train_archs`` (module doc), in the units of the classifiers' standardisation
    (:func:`nfws.eval.embeddings.standardiser`). Every architecture must have test NeRFs."""
    train = embedding_matrix(select(tables, train_archs, "train"))
    scale = standardiser(train)
    rows = []
    for arch, df in tables.items():
        test = embedding_matrix(select({arch: df}, [arch], "test"), f"{arch} test embeddings")
        shift = scale(test).astype(np.float64).mean(0)
        rows.append({"arch": arch, "n_test": len(test), "shift_sd": float(np.linalg.norm(shift)),
                     "same_distribution_sd": float(np.sqrt(train.shape[1] / len(test)))})
    return pd.DataFrame(rows, columns=COLUMNS)
