"""The GMN tables: our classification and retrieval numbers beside the published ones.

Inputs are the long result tables of :func:`nfws.eval.classify.classify` and
:func:`nfws.eval.retrieval.retrieval` (concatenated over runs). Rows with the same keys
(several seeds) are reduced to mean, std and count. Published rows we did not run stay in
the table with an empty "ours", so a missing run is visible rather than hidden.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from nfws.eval.tables import published, write_table

SEEN_KEYS = ["encoder_loss", "encoder_train", "classifier_train", "test_arch"]
SINGLE_KEYS = ["method", "train_set", "test_arch"]
RETRIEVAL_KEYS = ["encoder_loss", "k", "query", "gallery"]


def _require(df: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: result table lacks columns {missing}")


def beside_published(ours: pd.DataFrame, keys: list[str], value: str, paper: pd.DataFrame,
                     paper_value: str) -> pd.DataFrame:
    """Mean/std/count of ``value`` per ``keys`` beside the published column.

    Rows follow the paper's order; our rows without a published value come last.
    """
    _require(ours, keys + [value], "table")
    stats = (ours.groupby(keys, sort=False)[value]
             .agg(ours="mean", ours_std="std", n_runs="count").reset_index())
    paper = paper[keys + [paper_value]].rename(columns={paper_value: "published"})
    table = paper.merge(stats, on=keys, how="left")
    extra = stats.merge(paper[keys], on=keys, how="left", indicator=True)
    extra = extra[extra["_merge"] == "left_only"].drop(columns="_merge")
    table = pd.concat([table, extra], ignore_index=True)
    table["n_runs"] = pd.Series([int(n) if pd.notna(n) else None for n in table["n_runs"]], dtype=object)
    return table[keys + ["ours", "published", "ours_std", "n_runs"]]


def with_per_arch(table: pd.DataFrame, results: pd.DataFrame, keys: list[str],
                  value: str) -> pd.DataFrame:
    """Add ``ours_per_arch`` (mean) and ``ours_per_arch_std`` of the rows run with
    per-architecture statistics; rows without a ``statistics`` column (results written
    before it existed) are the paper's protocol."""
    if "statistics" not in results.columns or not (results["statistics"] == "per_arch").any():
        return table
    stats = (results[results["statistics"] == "per_arch"].groupby(keys, sort=False)[value]
             .agg(ours_per_arch="mean", ours_per_arch_std="std").reset_index())
    extra = stats.merge(table[keys], on=keys, how="left", indicator=True)
    extra = extra[extra["_merge"] == "left_only"].drop(columns="_merge")
    return pd.concat([table.merge(stats, on=keys, how="left"), extra], ignore_index=True)


def _paper_protocol(results: pd.DataFrame) -> pd.DataFrame:
    if "statistics" not in results.columns:
        return results
    return results[results["statistics"] == "train_set"]


def seen_table(results: pd.DataFrame, seen_archs) -> pd.DataFrame:
    """Table 8: classification accuracy % on the training architectures' test splits."""
    return _classification_table(results, "gmn_classification_seen", seen_archs)


def unseen_table(results: pd.DataFrame, unseen_archs) -> pd.DataFrame:
    """Table 9: classification accuracy % on architectures the encoder never saw."""
    return _classification_table(results, "gmn_classification_unseen", unseen_archs)


def _classification_table(results: pd.DataFrame, name: str, test_archs) -> pd.DataFrame:
    paper = published(name)
    ours = results[results["test_arch"].isin(test_archs)]
    table = beside_published(_paper_protocol(ours), SEEN_KEYS, "accuracy",
                             paper[paper["test_arch"].isin(test_archs)], "accuracy")
    return with_per_arch(table, ours, SEEN_KEYS, "accuracy")


def single_arch_table(results: pd.DataFrame) -> pd.DataFrame:
    """Table 5: encoder and classifier trained on one architecture, tested on its variants."""
    _require(results, ["method", "classifier_train", "test_arch", "accuracy"], "single-arch")
    df = results.rename(columns={"classifier_train": "train_set"})
    table = beside_published(_paper_protocol(df), SINGLE_KEYS, "accuracy",
                             published("gmn_classification_single_arch"), "accuracy")
    return with_per_arch(table, df, SINGLE_KEYS, "accuracy")


def retrieval_table(results: pd.DataFrame) -> pd.DataFrame:
    """Table 10: recall@k % per query/gallery pair."""
    return beside_published(results, RETRIEVAL_KEYS, "recall", published("gmn_retrieval"), "recall")


NOTE = ("'ours' is the mean over n_runs runs (seeds), 'ours_std' their standard deviation; "
        "'published' is the paper's value (Ballerini et al. 2026); an empty cell was not "
        "run or not reported. Our default run is a small CPU-sized budget (see config.yaml), "
        "so absolute numbers are not comparable; the qualitative pattern is.")


PER_ARCH_NOTE = (" 'ours' standardises embeddings with the classifier's training-set statistics, "
                 "as the paper does; 'ours_per_arch' runs the same classifiers with every "
                 "architecture standardised by its own statistics: its train split, or, for an "
                 "architecture without one (the unseen ones), its test NeRFs' embeddings, used "
                 "without labels (transductive, as test-time BatchNorm adaptation).")


RETRIEVAL_NOTE = (" Test split. X/Y: queries of architecture X, gallery of architecture Y. ALL/ALL: "
                  "queries are all MLP, TRI and HASH NeRFs, the gallery is the same set without "
                  "the query; a hit is the query object's NeRF in another architecture.")


def centroid_shift_table(centroids: pd.DataFrame) -> pd.DataFrame:
    """Encoders as rows (loss, trained on), each architecture's shift as a column, and the
    distance a sample of the training distribution itself would have."""
    _require(centroids, ["loss", "trained_on", "arch", "shift_sd", "same_distribution_sd"],
             "centroid shifts")
    wide = centroids.pivot_table(index=["loss", "trained_on"], columns="arch", values="shift_sd",
                                 sort=False)
    wide["same_distribution"] = centroids.groupby(["loss", "trained_on"], sort=False)[
        "same_distribution_sd"].max()
    return wide.reset_index()


CENTROID_NOTE = (" Distance of each architecture's mean test embedding from the mean of the "
                 "encoder's classifier training set (the train split of the architectures it "
                 "was trained on), in that set's per-dimension standard deviations (L2 norm). "
                 "'same_distribution': about where the mean of the smallest test set would lie "
                 "if it were drawn from the training distribution itself (sqrt(d / n)).")


def write_gmn_tables(classification: pd.DataFrame, single_arch: pd.DataFrame,
                     retrieval: pd.DataFrame, centroids: pd.DataFrame, out_dir, seen_archs,
                     unseen_archs) -> dict[str, Path]:
    """Write gmn_classification_seen / _unseen / _single_arch, gmn_retrieval and
    gmn_centroid_shift (.csv, .md)."""
    out_dir = Path(out_dir)
    tables = {
        "gmn_classification_seen": (seen_table(classification, seen_archs),
                                    "Classification accuracy (%) on seen architectures (Table 8)"),
        "gmn_classification_unseen": (unseen_table(classification, unseen_archs),
                                      "Classification accuracy (%) on unseen architectures (Table 9)"),
        "gmn_classification_single_arch": (single_arch_table(single_arch),
                                           "Single-architecture classification accuracy (%) (Table 5)"),
        "gmn_retrieval": (retrieval_table(retrieval),
                          "Instance retrieval recall@k (%) across architectures (Table 10)"),
        "gmn_centroid_shift": (centroid_shift_table(centroids),
                               "Test-embedding centroid shift from the training set (SDs)"),
    }
    written = {}
    for name, (df, title) in tables.items():
        note = (CENTROID_NOTE.strip() if name == "gmn_centroid_shift" else NOTE + (
            RETRIEVAL_NOTE if name == "gmn_retrieval"
            else PER_ARCH_NOTE if "ours_per_arch" in df.columns else ""))
        write_table(df, out_dir / f"{name}.csv", out_dir / f"{name}.md", title, note)
        written[name] = out_dir / f"{name}.csv"
    return written
