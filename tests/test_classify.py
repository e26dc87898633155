"""The downstream classifier learns a separable toy set and scores the right split."""
import numpy as np
import pandas as pd
import pytest

from nfws.eval.classify import classify, train_classifier, predict
from nfws.store import write_parquet


CFG = {"widths": [32, 16, 8], "dropout": 0.1, "epochs": 40, "batch_size": 16, "lr": 1e-2,
       "weight_decay": 1e-2, "seeds": [0, 1]}


def blobs(rng, n_per_class, n_classes=3, dim=6):
    y = np.repeat(np.arange(n_classes), n_per_class)
    centres = 4.0 * np.eye(n_classes, dim)
    return (centres[y] + 0.5 * rng.standard_normal((len(y), dim))).astype(np.float32), y


def test_classifier_learns_separable_blobs():
    rng = np.random.default_rng(0)
    x, y = blobs(rng, 30)
    xt, yt = blobs(rng, 20)
    model = train_classifier(x, y, 3, CFG, seed=0)
    assert (predict(model, xt) == yt).mean() > 0.95


def test_classify_trains_on_train_split_and_tests_on_test_split(tmp_path):
    rng = np.random.default_rng(1)
    paths = {}
    for arch in ("A", "B"):
        x_tr, y_tr = blobs(rng, 20)
        x_te, y_te = blobs(rng, 10)
        # the test split of B carries flipped labels: a classifier that learnt the blobs
        # must score ~0 there, which shows the test split (not train) is what is scored
        if arch == "B":
            y_te = (y_te + 1) % 3
        df = pd.DataFrame({"object_id": [f"o{i}" for i in range(len(y_tr) + len(y_te))], "arch": arch,
                           "split": ["train"] * len(y_tr) + ["test"] * len(y_te),
                           "class_index": np.concatenate([y_tr, y_te]), "emb": list(np.concatenate([x_tr, x_te]))})
        paths[arch] = tmp_path / f"{arch}.parquet"
        write_parquet(df, paths[arch])
    res = classify(paths, {"ALL": ["A", "B"], "A": ["A"]}, ["A", "B"], CFG, n_classes=3,
                   out_path=tmp_path / "res.parquet", context={"encoder_loss": "L_R"})
    assert len(res) == 2 * 2 * 2 and (res["n_test"] == 30).all()
    acc = res.groupby("test_arch")["accuracy"].mean()
    assert acc["A"] > 95 and acc["B"] < 5
    assert (tmp_path / "res.parquet").exists()
    with pytest.raises(KeyError, match="C"):
        classify(paths, {"C": ["C"]}, ["A"], CFG, n_classes=3)


def test_standardiser_uses_training_statistics_only():
    from nfws.eval.embeddings import standardiser

    train = np.array([[1.0, 10.0], [3.0, 10.2]])        # mean (2, 10.1), std (1, 0.1)
    scale = standardiser(train)
    np.testing.assert_allclose(scale(np.array([[2.0, 10.3], [0.0, 10.1]])),
                               [[0.0, 2.0], [-2.0, 0.0]], atol=1e-4)
