"""The downstream classifier learns a separable toy set and scores the right split."""
import numpy as np
import pandas as pd
import pytest

from nfws.eval.classify import ClassifierConfig, classify, train_classifier, predict
from nfws.store import write_parquet


CFG = {"widths": [32, 16, 8], "dropout": 0.1, "epochs": 40, "batch_size": 16, "lr": 1e-2,
       "weight_decay": 1e-2, "seeds": [0, 1], "statistics": ["train_set"]}


def blobs(rng, n_per_class, n_classes=3, dim=6):
    y = np.repeat(np.arange(n_classes), n_per_class)
    centres = 4.0 * np.eye(n_classes, dim)
    return (centres[y] + 0.5 * rng.standard_normal((len(y), dim))).astype(np.float32), y


def test_classifier_learns_separable_blobs():
    rng = np.random.default_rng(0)
    x, y = blobs(rng, 30)
    xt, yt = blobs(rng, 20)
    model = train_classifier(x, y, 3, ClassifierConfig.from_dict(CFG), seed=0)
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


def test_standardiser_only_centres_a_dimension_constant_in_training():
    from nfws.eval.embeddings import standardiser

    train = np.array([[1.0, 5.0], [3.0, 5.0]])         # second dimension: std 0
    scale = standardiser(train)
    np.testing.assert_allclose(scale(np.array([[2.0, 5.5], [4.0, 5.0 + 1e-8]])),
                               [[0.0, 0.5], [2.0, 1e-8]], atol=1e-6)


def _table(arch, x, y, splits):
    return pd.DataFrame({"object_id": [f"{arch}{i}" for i in range(len(y))], "arch": arch,
                         "split": splits, "class_index": y, "emb": list(x.astype(np.float32))})


def test_per_arch_statistics_use_each_architectures_own_train_split_else_all_its_nerfs():
    from nfws.eval.embeddings import scalers

    seen = _table("A", np.array([[1.0, 10.0], [3.0, 10.2], [100.0, 100.0]]), [0, 1, 0],
                  ["train", "train", "test"])
    unseen = _table("B", np.array([[0.0, 5.0], [4.0, 7.0]]), [0, 1], ["test", "test"])
    scale = scalers({"A": seen, "B": unseen}, ["A"], "per_arch")
    # A: train rows only, mean (2, 10.1), std (1, 0.1); B: both (test) rows, mean (2, 6), std (2, 1)
    np.testing.assert_allclose(scale["A"](np.array([[2.0, 10.3]])), [[0.0, 2.0]], atol=1e-4)
    np.testing.assert_allclose(scale["B"](np.array([[0.0, 5.0], [6.0, 6.0]])), [[-1.0, -1.0], [2.0, 0.0]],
                               atol=1e-6)
    # the paper's protocol: A's train statistics for every architecture
    paper = scalers({"A": seen, "B": unseen}, ["A"], "train_set")
    np.testing.assert_allclose(paper["B"](np.array([[2.0, 10.3]])), [[0.0, 2.0]], atol=1e-4)
    with pytest.raises(ValueError, match="statistics 'global' unknown"):
        scalers({"A": seen}, ["A"], "global")


def test_per_arch_accuracy_is_invariant_to_an_affine_change_of_an_unseen_architecture(tmp_path):
    """An unseen architecture whose embeddings are the seen one's under a per-dimension
    offset and positive scale: the paper's protocol reads it off-distribution, per-arch
    statistics undo the change, so its accuracy equals that of the unchanged copy."""
    rng = np.random.default_rng(2)
    x_tr, y_tr = blobs(rng, 20)
    x_te, y_te = blobs(rng, 15)
    offset, gain = 40.0 * rng.standard_normal(6), rng.uniform(0.2, 5.0, 6)
    tables = {"A": _table("A", np.concatenate([x_tr, x_te]), np.concatenate([y_tr, y_te]),
                          ["train"] * len(y_tr) + ["test"] * len(y_te)),
              # the unseen architectures have test NeRFs only, as in the default config
              "copy": _table("copy", x_te, y_te, ["test"] * len(y_te)),
              "moved": _table("moved", x_te * gain + offset, y_te, ["test"] * len(y_te))}
    paths = {}
    for arch, df in tables.items():
        paths[arch] = tmp_path / f"{arch}.parquet"
        write_parquet(df, paths[arch])
    res = classify(paths, {"A": ["A"]}, ["A", "copy", "moved"],
                   {**CFG, "statistics": ["train_set", "per_arch"]}, n_classes=3)
    acc = res.groupby(["statistics", "test_arch"])["accuracy"].mean()
    assert acc["per_arch", "moved"] == pytest.approx(acc["per_arch", "copy"], abs=1e-9)
    assert acc["per_arch", "moved"] > 80
    assert acc["train_set", "moved"] < 60 < acc["train_set", "A"]
    assert set(res["statistics"]) == {"train_set", "per_arch"} and len(res) == 2 * 2 * 3


def test_classify_refuses_unknown_or_empty_statistics(tmp_path):
    x, y = blobs(np.random.default_rng(3), 4)
    path = tmp_path / "A.parquet"
    write_parquet(_table("A", x, y, ["train", "test"] * (len(y) // 2)), path)
    for bad in (["per_arch", "global"], []):
        with pytest.raises(ValueError, match=r"gmn.classifier.statistics: must be a non-empty subset"):
            classify({"A": path}, {"A": ["A"]}, ["A"], {**CFG, "statistics": bad}, n_classes=3)


def test_a_train_set_with_the_same_features_under_both_statistics_is_fitted_once(tmp_path, monkeypatch):
    """One architecture's train split standardised by its own statistics is the same
    matrix under ``train_set`` and ``per_arch``: its classifier is fitted once per seed
    and scores as a fresh fit does; ALL (two architectures) differs and is fitted twice."""
    import nfws.eval.classify as classify_module

    rng = np.random.default_rng(4)
    paths = {}
    for arch, shift in (("A", 0.0), ("B", 3.0)):
        x_tr, y_tr = blobs(rng, 12)
        x_te, y_te = blobs(rng, 6)
        paths[arch] = tmp_path / f"{arch}.parquet"
        write_parquet(_table(arch, np.concatenate([x_tr, x_te]) + shift, np.concatenate([y_tr, y_te]),
                             ["train"] * len(y_tr) + ["test"] * len(y_te)), paths[arch])
    fits = []
    real = classify_module.train_classifier
    monkeypatch.setattr(classify_module, "train_classifier",
                        lambda x, *a, **k: fits.append(x.shape) or real(x, *a, **k))
    cfg = {**CFG, "statistics": ["train_set", "per_arch"]}
    res = classify(paths, {"ALL": ["A", "B"], "A": ["A"]}, ["A", "B"], cfg, n_classes=3)
    # ALL: 2 statistics x 2 seeds on 72 rows; A: 2 seeds on 36 rows, shared by both statistics
    assert sorted(fits) == [(36, 6)] * 2 + [(72, 6)] * 4
    on_a = res[(res["classifier_train"] == "A") & (res["test_arch"] == "A")]
    by_stats = on_a.pivot(index="seed", columns="statistics", values="accuracy")
    assert (by_stats["train_set"] == by_stats["per_arch"]).all()
    a = pd.read_parquet(paths["A"])
    train, test = a[a["split"] == "train"], a[a["split"] == "test"]
    x = np.stack(train["emb"]).astype(np.float64)
    scale = lambda v: ((np.stack(v).astype(np.float64) - x.mean(0)) / (x.std(0) + 1e-12)).astype(np.float32)
    model = real(scale(train["emb"]), train["class_index"].to_numpy(), 3,
                 ClassifierConfig.from_dict(cfg), seed=1)
    fresh = 100.0 * (predict(model, scale(test["emb"])) == test["class_index"].to_numpy()).mean()
    assert by_stats.loc[1, "per_arch"] == pytest.approx(fresh)
