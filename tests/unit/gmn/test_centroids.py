"""Centroid shifts of test embeddings in training standard deviations (nfws.gmn.centroids)."""
import numpy as np
import pandas as pd
import pytest

from nfws.gmn.centroids import centroid_shifts


def table(arch, split_rows):
    rows = [{"object_id": f"{arch}{i}", "arch": arch, "split": split, "class_index": 0,
             "emb": np.asarray(e, np.float32)} for i, (split, e) in enumerate(split_rows)]
    return pd.DataFrame(rows)


def test_shift_by_hand():
    # train (A): dims (0, 2) and (2, 6): mean (1, 4), std (1, 2)
    a = table("A", [("train", [0, 2]), ("train", [2, 6]), ("test", [1, 4]), ("test", [3, 4])])
    # B's test mean (4, 0): shift ((4-1)/1, (0-4)/2) = (3, -2) -> sqrt(13)
    b = table("B", [("test", [4, 0]), ("test", [4, 0])])
    out = centroid_shifts({"A": a, "B": b}, ["A"]).set_index("arch")
    assert out.loc["A", "shift_sd"] == pytest.approx(1.0)          # test mean (2, 4)
    assert out.loc["B", "shift_sd"] == pytest.approx(np.sqrt(13))
    assert out.loc["B", "same_distribution_sd"] == pytest.approx(1.0)   # sqrt(d / n) = sqrt(2 / 2)
    assert out.loc["A", "n_test"] == 2


def test_a_dimension_constant_in_training_counts_unscaled():
    # third dimension: 0 on every training NeRF (a dead readout unit); B's rounding noise
    # there moves B by 1e-8, not by 1e-8 / eps
    a = table("A", [("train", [0, 2, 0]), ("train", [2, 6, 0]), ("test", [1, 4, 0])])
    b = table("B", [("test", [4, 0, 1e-8])])
    out = centroid_shifts({"A": a, "B": b}, ["A"]).set_index("arch")
    assert out.loc["B", "shift_sd"] == pytest.approx(np.sqrt(13), rel=1e-6)


def test_a_sample_of_the_training_distribution_lies_near_sqrt_d_over_n():
    rng = np.random.default_rng(0)
    d, n = 64, 50
    a = table("A", [("train", e) for e in rng.normal(3, 2, (4000, d))]
              + [("test", e) for e in rng.normal(3, 2, (n, d))])
    row = centroid_shifts({"A": a}, ["A"]).iloc[0]
    assert row["same_distribution_sd"] == pytest.approx(np.sqrt(d / n))
    assert 0.8 * row["same_distribution_sd"] < row["shift_sd"] < 1.2 * row["same_distribution_sd"]


def test_an_architecture_without_test_nerfs_is_an_error():
    a = table("A", [("train", [0.0]), ("train", [1.0]), ("test", [0.5])])
    b = table("B", [("train", [0.0])])
    with pytest.raises(ValueError, match="no test embeddings for architectures \\['B'\\]"):
        centroid_shifts({"A": a, "B": b}, ["A"])
