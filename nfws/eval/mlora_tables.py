"""Tables of the mLoRA track, ours beside the published numbers (Yang et al. 2026)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from nfws.eval.tables import published, write_table
from nfws.fit.instances import load_fitted_weights
from nfws.models.lora import DISPLAY_NAMES, KINDS


def _scores(paths) -> tuple[np.ndarray, dict]:
    _, _, attrs = load_fitted_weights(paths)
    return attrs["score"].astype(np.float64), attrs


def reconstruction_table(image_shards: dict, shape_shards: dict, csv_path, md_path) -> pd.DataFrame:
    """Per representation: PSNR (2D) and Chamfer ×100 mean / median (3D), trainable params.

    ``image_shards`` / ``shape_shards`` map a kind (``nfws.models.lora.KINDS``) to its
    fitted shard paths; a dataset may be absent (empty dict).
    """
    pub = published("mlora_reconstruction").set_index("representation")
    rows = []
    for kind in KINDS:
        name = DISPLAY_NAMES[kind]
        row = {"representation": name}
        if kind in image_shards:
            s, a = _scores(image_shards[kind])
            row.update({"psnr": float(np.mean(s)), "psnr_params": a["n_trainable"],
                        "n_images": len(s), "n_images_dropped": len(a["dropped"])})
        if kind in shape_shards:
            s, a = _scores(shape_shards[kind])
            ok = s[np.isfinite(s)]
            row.update({"cd_mean_x1e-2": float(ok.mean() * 100) if len(ok) else np.nan,
                        "cd_median_x1e-2": float(np.median(ok) * 100) if len(ok) else np.nan,
                        "cd_params": a["n_trainable"], "n_shapes": len(s),
                        "n_empty_mesh": int((~np.isfinite(s)).sum()),
                        "n_shapes_dropped": len(a["dropped"])})
        p = pub.loc[name] if name in pub.index else None
        if p is not None:
            row.update({"paper_psnr": p["ffhq_psnr"], "paper_psnr_params": p["ffhq_params"],
                        "paper_cd_mean": p["shapenet_cd_a_x1e-2"],
                        "paper_cd_median": p["shapenet_cd_m_x1e-2"],
                        "paper_cd_params": p["shapenet_params"]})
        rows.append(row)
    df = pd.DataFrame(rows)
    write_table(df, csv_path, md_path, "Reconstruction of the six weight representations",
                note="PSNR (dB) of fitted images at the configured resolution; Chamfer "
                     "distance (mean of squared nearest distances, both directions, ×100) "
                     "between marching-cubes vertices and ground-truth surface points. "
                     "params = trainable entries (masked ones excluded). Paper: FFHQ 128² "
                     "and ShapeNet; ours: the configured (default: synthetic, CPU-sized) data. "
                     "n_empty_mesh counts fields without a surface (excluded from CD); "
                     "n_*_dropped counts diverged fits dropped under on_failure: drop.")
    return df


def structure_table(csv_paths, csv_path, md_path) -> pd.DataFrame:
    """Mean ± std cosine similarity and barrier per representation and λ."""
    df = pd.concat([pd.read_csv(p) for p in csv_paths])
    g = df.groupby(["representation", "lambda"], sort=False)
    out = g.agg(cosine_mean=("cosine", "mean"), cosine_std=("cosine", "std"),
                barrier_mean=("barrier", "mean"), barrier_std=("barrier", "std"),
                excess_mean=("barrier_excess", "mean"), n=("cosine", "size"),
                n_no_surface=("barrier", lambda b: int(b.isna().sum()))).reset_index()
    metric = df["error_metric"].iloc[0]
    write_table(out, csv_path, md_path, "Weight-space structure under perturbed initialisation",
                note=f"Second fit from √(1−λ²)ι1 + λι2. barrier = {metric} of the midpoint "
                     "weights (paper §4.2); excess = barrier − mean endpoint error. The paper "
                     "reports this only as a figure (Fig. 3), so there are no published "
                     "numbers to print beside ours. n_no_surface: midpoint fields without a surface "
                     "(no Chamfer distance; excluded from the means).", floatfmt="{:.4g}")
    return out


def discriminative_table(parquet_paths, csv_path, md_path) -> pd.DataFrame:
    """ARI, 1-NN and logistic accuracy in percent, mean ± std over runs, paper beside."""
    runs = pd.concat([pd.read_parquet(p) for p in parquet_paths])
    pub = published("mlora_discriminative").set_index("representation")
    rows = []
    for name, part in runs.groupby("representation", sort=False):
        row = {"representation": name, "n_runs": len(part)}
        for col in ("ari", "nn1", "logistic"):
            row[f"{col}_mean"] = 100 * part[col].mean()
            row[f"{col}_std"] = 100 * part[col].std(ddof=0)
            if name in pub.index:
                row[f"paper_{col}"] = pub.loc[name, f"{col}_mean"]
        rows.append(row)
    df = pd.DataFrame(rows)
    write_table(df, csv_path, md_path, "Discriminative probes on weight representations",
                note="k-means (k = #classes) adjusted Rand index, 1-NN (cosine) and logistic "
                     "regression accuracy on standardised flattened weights, % mean ± std "
                     "over seeded stratified random splits. Paper: ShapeNet 10 classes; ours: "
                     "the configured 3D dataset.")
    return df
