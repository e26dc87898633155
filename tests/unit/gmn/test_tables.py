"""GMN tables: per-architecture-statistics columns beside the paper protocol's."""
import pandas as pd
import pytest

from nfws.gmn.tables import SEEN_KEYS, unseen_table


def rows(statistics, test_arch, accuracies):
    return pd.DataFrame({"encoder_loss": "L_R", "encoder_train": "ALL", "classifier_train": "ALL",
                         "test_arch": test_arch, "statistics": statistics,
                         "seed": range(len(accuracies)), "accuracy": accuracies})


def test_unseen_table_puts_per_arch_means_beside_the_paper_protocol():
    results = pd.concat([rows("train_set", "MLP-2L", [10.0, 20.0]),
                         rows("per_arch", "MLP-2L", [40.0, 60.0]),
                         rows("per_arch", "TRI-8C", [30.0, 30.0])])
    table = unseen_table(results, ["MLP-2L", "TRI-8C"]).set_index(SEEN_KEYS)
    key = ("L_R", "ALL", "ALL", "MLP-2L")
    assert table.loc[key, "ours"] == 15.0 and table.loc[key, "published"] == 91.3
    assert table.loc[key, "ours_per_arch"] == 50.0
    assert table.loc[key, "ours_per_arch_std"] == pytest.approx(200 ** 0.5)   # sample std of 40, 60
    tri = table.loc[("L_R", "ALL", "ALL", "TRI-8C")]
    assert pd.isna(tri["ours"]) and tri["ours_per_arch"] == 30.0 and tri["published"] == 69.4
    # rows follow the paper's order (L_R, then L_R+C, ...), not the results' grouping
    flat = table.reset_index()
    assert list(flat["test_arch"][:4]) == ["MLP-2L", "TRI-8C"] * 2
    assert list(flat["encoder_loss"][:4]) == ["L_R", "L_R", "L_R+C", "L_R+C"]


def test_results_without_a_statistics_column_are_the_paper_protocol():
    results = rows("train_set", "MLP-2L", [10.0, 20.0]).drop(columns="statistics")
    table = unseen_table(results, ["MLP-2L"])
    assert "ours_per_arch" not in table.columns
    assert table.set_index(SEEN_KEYS).loc[("L_R", "ALL", "ALL", "MLP-2L"), "ours"] == 15.0
