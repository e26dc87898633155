"""ARI, cosine 1-NN, logistic probes and the tables on hand-built sets."""
import numpy as np
import pandas as pd
import pytest

from nfws.eval.discriminative import (discriminative_runs, kmeans_ari, nn1_cosine_accuracy,
                                      standardise)

CFG = dict(n_runs=3, test_fraction=0.25, logistic_max_iter=500, kmeans_n_init=3)


def test_nn1_cosine_hand_case():
    train = np.array([[1.0, 0.0], [0.0, 1.0]])
    ytr = np.array([0, 1])
    # [5, 1] is closer in angle to [1, 0]; [0.1, 3] to [0, 1]; [-1, 0.2] has cosine −0.98 with
    # [1, 0] and 0.196 with [0, 1] → class 1, although it is nearer to [1, 0] in no sense.
    test = np.array([[5.0, 1.0], [0.1, 3.0], [-1.0, 0.2]])
    assert nn1_cosine_accuracy(train, ytr, test, np.array([0, 1, 1])) == 1.0
    assert nn1_cosine_accuracy(train, ytr, test, np.array([0, 1, 0])) == pytest.approx(2 / 3)


def test_kmeans_ari_separated_and_permuted_labels():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(c, 0.05, (20, 2)) for c in ([0, 0], [5, 0], [0, 5])])
    y = np.repeat([2, 0, 1], 20)        # label names need not match cluster ids
    assert kmeans_ari(x, y, seed=0, n_init=10) == pytest.approx(1.0)
    # labels unrelated to the geometry: ARI near 0
    assert abs(kmeans_ari(x, np.tile([0, 1, 2], 20), seed=0, n_init=10)) < 0.1


def test_standardise_uses_train_stats_and_keeps_constant_columns():
    tr = np.array([[1.0, 7.0], [3.0, 7.0]])
    te = np.array([[2.0, 7.0]])
    a, b = standardise(tr, te)
    assert np.allclose(a, [[-1, 0], [1, 0]]) and np.allclose(b, [[0, 0]])


def test_runs_on_separable_data_and_determinism():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(3 * np.eye(5)[c], 0.1, (12, 5)) for c in range(3)])
    y = np.repeat([0, 1, 2], 12)
    df = discriminative_runs(x, y, CFG, seed=4)
    assert len(df) == 3
    assert (df.logistic == 1.0).all() and (df.nn1 == 1.0).all() and (df.ari > 0.99).all()
    assert df.equals(discriminative_runs(x, y, CFG, seed=4))
    with pytest.raises(ValueError, match=r"lora.discriminative: missing keys \[.n_runs."):
        discriminative_runs(x, y, {"test_fraction": 0.2}, seed=0)


def test_discriminative_table_puts_paper_beside_ours(tmp_path):
    from nfws.mlora.evaluate import discriminative_table
    runs = pd.DataFrame({"representation": ["mLoRA"] * 2, "run": [0, 1], "ari": [0.5, 0.7],
                         "nn1": [0.8, 0.8], "logistic": [0.9, 1.0]})
    runs.to_parquet(tmp_path / "r.parquet")
    df = discriminative_table([tmp_path / "r.parquet"], tmp_path / "t.csv", tmp_path / "t.md")
    row = df.iloc[0]
    assert row.ari_mean == pytest.approx(60.0) and row.ari_std == pytest.approx(10.0)
    assert row.paper_logistic == pytest.approx(90.0)
    assert "mLoRA" in (tmp_path / "t.md").read_text()
