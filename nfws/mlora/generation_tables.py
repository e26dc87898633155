"""Generation tables (paper Tables 2, 3, 5): our metrics beside the published ones.

Input: one metrics JSON per representation, written by
``nfws.mlora.generation.evaluate_generation``. Keys are representation kinds
(``mlp`` ... ``mlora_asym``) or ``<kind>_no_encoder`` for the layer-encoder ablation.
The standalone-MLP row is compared with the paper's HyperDiffusion row (same field, same
fitting trick, tensor-token DiT).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from nfws.eval.tables import published, write_table

DISPLAY = {"mlp": "MLP", "mlp_asym": "MLP-Asym", "lora": "LoRA", "lora_asym": "LoRA-Asym",
           "mlora": "mLoRA", "mlora_asym": "mLoRA-Asym"}
PAPER_METHOD = {"mlp": "HyperDiffusion", "mlp_asym": "MLP-Asym", "lora": "LoRA",
                "lora_asym": "LoRA-Asym", "mlora": "mLoRA", "mlora_asym": "mLoRA-Asym",
                "mlora_asym_no_encoder": "mLoRA-Asym without layer encoder"}
ABLATION = "_no_encoder"


def display_name(key: str) -> str:
    base = key[: -len(ABLATION)] if key.endswith(ABLATION) else key
    if base not in DISPLAY:
        raise ValueError(f"generation table: unknown representation {key!r}; "
                         f"known: {sorted(DISPLAY)} (+ '{ABLATION}')")
    return DISPLAY[base] + (" w/o layer encoder" if key.endswith(ABLATION) else "")


def _load(path) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: generation metrics missing")
    return json.loads(path.read_text())


def generation_table(metrics_paths: dict, published_dataset: str | None,
                     chamfer_scale: float = 1e3) -> tuple[pd.DataFrame, list[str], str]:
    """(table, extractor names, modality) for one dataset; ``published_dataset`` None
    (data the paper has no table for) leaves the paper columns empty."""
    paper = published("mlora_generation")
    paper = paper[paper["dataset"] == published_dataset].set_index("method")
    if paper.empty and published_dataset is not None:
        raise ValueError(f"no published generation numbers for dataset {published_dataset!r}")
    rows, extractors, modalities = [], [], set()
    for key, path in metrics_paths.items():
        m = _load(path)
        modalities.add(m["modality"])
        extractors.append(m["extractor"])
        ref = paper.loc[PAPER_METHOD[key]] if PAPER_METHOD.get(key) in paper.index else None

        def pub(col):
            return float(ref[col]) if ref is not None and pd.notna(ref[col]) else np.nan

        row = {"representation": display_name(key)}
        if m["modality"] == "occupancy":
            row.update({"mMD": m["mmd_cd"] * chamfer_scale, "mMD (paper)": pub("mmd_chamfer"),
                        "COV %": 100 * m["cov"], "COV % (paper)": pub("cov_pct"),
                        "1-NNA %": 100 * m["nna"], "1-NNA % (paper)": pub("nna_pct")})
        row.update({"FD": m["fd"], "FD (paper)": pub("fd"), "MMD-G": m["mmd_g"],
                    "MMD-G (paper)": pub("mmd_g"), "MMD-P": m["mmd_p"],
                    "MMD-P (paper)": pub("mmd_p"), "n_gen": m["n_gen"], "n_ref": m["n_ref"]})
        if m["modality"] == "occupancy":
            row["n_empty"] = m["n_empty"]
        rows.append(row)
    if len(modalities) != 1:
        raise ValueError(f"generation table mixes modalities {sorted(modalities)}")
    return pd.DataFrame(rows), sorted(set(extractors)), modalities.pop()


def write_generation_table(metrics_paths: dict, dataset: str, published_dataset: str | None,
                           csv_path, md_path, chamfer_scale: float = 1e3) -> pd.DataFrame:
    """Write the CSV + Markdown generation table of ``dataset`` (Table 2 for images,
    Tables 3 / 5 for shapes) with ``published_dataset``'s numbers beside ours."""
    df, extractors, modality = generation_table(metrics_paths, published_dataset, chamfer_scale)
    classes = sorted({c for path in metrics_paths.values() for c in _load(path).get("classes", [])})
    paper = published_dataset or "no published table for these classes"
    note = (f"Ours: dataset `{dataset}` (classes: {', '.join(classes)}), generated "
            f"samples vs the held-out split's ground truth (n_gen / n_ref per row; the paper "
            f"uses 2,048 / 2,048). Paper: {paper}. "
            f"Features for FD / MMD-G / MMD-P: {'; '.join(extractors)} (the paper uses "
            f"{'CLIP' if modality == 'image' else 'PointNet++'}), normalised by the reference "
            "set's scalar mean/std; MMD is the unbiased estimate. Our MLP row is compared with "
            "the paper's HyperDiffusion row.")
    if modality == "occupancy":
        note += (f" mMD is the Chamfer distance (mean squared nearest-neighbour distance, "
                 f"both directions summed) x {chamfer_scale:g}; n_empty = generated fields "
                 "with no surface (counted as a degenerate point at the origin).")
    title = f"Weight-space generation — {dataset} ({'images' if modality == 'image' else '3D shapes'})"
    write_table(df, csv_path, md_path, title, note, floatfmt="{:.3f}")
    return df
