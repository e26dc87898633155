"""recall@k on hand-built embedding sets."""
import numpy as np
import pandas as pd
import pytest

from nfws.eval.retrieval import recall_at_k, retrieval
from nfws.store import write_parquet


def points(*xs):
    return np.array([[x, 0.0] for x in xs])


def test_recall_across_two_sets_by_hand():
    query, q_ids = points(0, 10, 20, 50), ["a", "b", "c", "e"]
    gallery, g_ids = points(3, 1, 21, 12), ["a", "b", "c", "d"]
    # ranks of the true object: a -> 2 (b is closer), b -> 3 (d, a closer), c -> 1; e absent
    rec, n = recall_at_k(query, q_ids, gallery, g_ids, ks=(1, 2, 3), metric="euclidean")
    assert n == 3
    assert rec == pytest.approx({1: 100 / 3, 2: 200 / 3, 3: 100.0})


def test_recall_excluding_the_query_itself():
    emb, ids = points(0, 5, 1), ["a", "a", "b"]
    rec, n = recall_at_k(emb, ids, emb, ids, ks=(1, 2), exclude=np.eye(3, dtype=bool), metric="euclidean")
    assert n == 2                       # b has no other NeRF in the gallery
    assert rec == pytest.approx({1: 0.0, 2: 100.0})


def test_cosine_metric_ignores_scale():
    query, gallery = np.array([[1.0, 0.1], [0.1, 1.0]]), np.array([[0.1, 5.0], [9.0, 0.5]])
    ids_q, ids_g = ["a", "b"], ["b", "a"]
    rec, _ = recall_at_k(query, ids_q, gallery, ids_g, ks=(1,), metric="cosine")
    assert rec[1] == 100.0
    rec_e, _ = recall_at_k(query, ids_q, gallery, ids_g, ks=(1,), metric="euclidean")
    assert rec_e[1] == 50.0             # raw distances send query a to the shorter vector b


def test_retrieval_pairs_from_parquet(tmp_path):
    paths = {}
    layout = {"A": [0.0, 10.0], "B": [0.5, 9.0]}
    for arch, xs in layout.items():
        test = pd.DataFrame({"object_id": ["o1", "o2"], "arch": arch, "split": "test", "class_index": [0, 1],
                             "emb": [np.array([x, 1.0], np.float32) for x in xs]})
        # Train rows fix the standardisation: mean 1 and std 1 in both dimensions, a shift
        # and a uniform scale that leave every distance ranking as it is.
        train = pd.DataFrame({"object_id": ["t1", "t2"], "arch": arch, "split": "train", "class_index": [0, 1],
                              "emb": [np.zeros(2, np.float32), np.full(2, 2.0, np.float32)]})
        df = pd.concat([test, train], ignore_index=True)
        paths[arch] = tmp_path / f"{arch}.parquet"
        write_parquet(df, paths[arch])
    res = retrieval(paths, [("ALL", "ALL"), ("A", "B")], ["A", "B"], ks=(1,), metric="euclidean",
                    context={"encoder_loss": "L_R"})
    assert set(res.columns) >= {"encoder_loss", "query", "gallery", "k", "recall", "n_queries"}
    assert res["recall"].tolist() == [100.0, 100.0]
    assert res["n_queries"].tolist() == [4, 2]
    with pytest.raises(ValueError, match="ALL"):
        retrieval(paths, [("ALL", "B")], ["A", "B"])
