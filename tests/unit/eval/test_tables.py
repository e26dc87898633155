import pandas as pd
import pytest

from nfws.eval.tables import PUBLISHED, published, to_markdown, write_table


def test_every_published_table_loads():
    for name in PUBLISHED:
        assert len(published(name)) > 0
    assert published("gmn_classification_seen").query(
        "encoder_loss == 'L_R' and classifier_train == 'ALL' and test_arch == 'MLP'"
    )["accuracy"].item() == 93.6
    with pytest.raises(KeyError, match="unknown published table"):
        published("nope")


def test_markdown_prints_missing_as_dash(tmp_path):
    df = pd.DataFrame({"arch": ["MLP", "TRI"], "ours": [91.234, None]})
    md = to_markdown(df)
    assert md.splitlines()[2] == "| MLP | 91.23 |" and md.splitlines()[3] == "| TRI | – |"
    write_table(df, tmp_path / "t.csv", tmp_path / "t.md", "Title", "why")
    assert (tmp_path / "t.md").read_text().startswith("# Title\n\nwhy\n\n| arch | ours |")
    assert pd.read_csv(tmp_path / "t.csv").shape == (2, 2)
