"""Metric tables: a CSV for pandas and a Markdown page that people read.

Published numbers live in the package (``nfws/published/*.csv``, one row per reported
value) so tables can print them beside ours without any download.
"""
from __future__ import annotations

from importlib import resources

import pandas as pd

from nfws.store import write_text

PUBLISHED = (
    "gmn_classification_seen",
    "gmn_classification_single_arch",
    "gmn_classification_unseen",
    "gmn_retrieval",
    "mlora_discriminative",
    "mlora_generation",
    "mlora_reconstruction",
)


def published(name: str) -> pd.DataFrame:
    """The published values of one table (see ``PUBLISHED``)."""
    if name not in PUBLISHED:
        raise KeyError(f"unknown published table {name!r}; known: {PUBLISHED}")
    with resources.files("nfws.published").joinpath(f"{name}.csv").open() as fh:
        return pd.read_csv(fh)


def to_markdown(df: pd.DataFrame, floatfmt: str = "{:.2f}") -> str:
    """A GitHub-style Markdown table; missing values print as an en dash."""
    def cell(v):
        if v is None or (isinstance(v, float) and pd.isna(v)):
            return "–"
        if isinstance(v, float):
            return floatfmt.format(v)
        return str(v)

    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *rows]) + "\n"


def write_table(df: pd.DataFrame, csv_path, md_path, title: str, note: str = "",
                floatfmt: str = "{:.2f}") -> None:
    """Write ``df`` as CSV and as Markdown with a title and an explanatory note."""
    with_note = f"{note.strip()}\n\n" if note.strip() else ""
    write_text(df.to_csv(index=False), csv_path)
    write_text(f"# {title}\n\n{with_note}{to_markdown(df, floatfmt)}", md_path)
