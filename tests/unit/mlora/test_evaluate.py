"""Track B stage glue: which published generation table our data is compared with."""
import json

import pandas as pd
import pytest

from nfws.mlora.config import published_generation_dataset
from nfws.mlora.evaluate import generation_table

METRICS = {"modality": "occupancy", "n_gen": 8, "n_ref": 6, "n_empty": 0, "fd": 0.5,
           "mmd_g": 0.1, "mmd_p": 1.0, "mmd_cd": 0.004, "cov": 0.5, "nna": 0.75,
           "extractor": "PointNet trained on shapenet train as an autoencoder"}


def test_published_table_follows_the_classes():
    assert published_generation_dataset("faces", ["unlabelled"]) == "FFHQ"
    assert published_generation_dataset("shapenet", ["airplane", "car"]) == "ShapeNet-Multi"
    assert published_generation_dataset("shapenet", ["airplane"]) == "ShapeNet-Airplane"
    assert published_generation_dataset("shapenet", ["chair"]) is None
    with pytest.raises(ValueError, match="unknown dataset"):
        published_generation_dataset("mnist", ["0"])


@pytest.mark.parametrize("classes, paper_mmd", [(["airplane"], 1.89), (["airplane", "car"], 5.52),
                                                (["chair"], None)])
def test_generation_table_of_a_single_or_multi_category_run(tmp_path, classes, paper_mmd):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({**METRICS, "classes": classes}))
    generation_table({"mlora_asym": path}, "shapenet", tmp_path / "t.csv", tmp_path / "t.md")
    row = pd.read_csv(tmp_path / "t.csv").iloc[0]
    if paper_mmd is None:
        assert pd.isna(row["mMD (paper)"])
    else:
        assert row["mMD (paper)"] == paper_mmd      # Table 3, mLoRA-Asym
    md = (tmp_path / "t.md").read_text()
    assert f"(classes: {', '.join(sorted(classes))})" in md
    assert "autoencoder" in md                       # the extractor is named
