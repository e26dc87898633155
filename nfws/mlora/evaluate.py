"""Evaluation of the fitted representations: discriminative probes, the structure, reconstruction
and generation tables, ours beside the published numbers (Yang et al. 2026)."""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from nfws.eval.discriminative import discriminative_runs, standardise
from nfws.eval.tables import published, write_table
from nfws.eval.tsne import tsne_scatter
from nfws.mlora.base_reference import BaseReference, read_base_reference
from nfws.mlora.models import DISPLAY_NAMES, KINDS
from nfws.mlora.weight_shard import WeightShard, read_weight_shards
from nfws.store import write_parquet


#: The base field's reference rows: (measurement of the base-reference store, label,
#: instances scored).
BASE_ROWS = (("train", "base (training latents)", "train split"),
             ("test", "base (latent-only fit)", "test split"))


def _scores(paths) -> tuple[np.ndarray, WeightShard]:
    shard = read_weight_shards(paths)
    return shard.score.astype(np.float64), shard


def _base_scores(ref: BaseReference, measurement: str) -> tuple[np.ndarray, np.ndarray]:
    """Object ids and scores of the ``train`` or ``test`` measurement of a base reference."""
    ids = getattr(ref, f"{measurement}_object_ids")
    return (np.array([str(o) for o in ids], dtype=object),
            getattr(ref, f"{measurement}_score").astype(np.float64))


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else np.nan


def _image_columns(s: np.ndarray, on_test: np.ndarray, n_params: int, n_trainable: int,
                   n_dropped: int) -> dict:
    return {"psnr": _mean(s), "psnr_test": _mean(s[on_test]), "psnr_n_params": n_params,
            "psnr_params": n_trainable, "n_images": len(s), "n_images_dropped": n_dropped}


def _shape_columns(s: np.ndarray, on_test: np.ndarray, n_params: int, n_trainable: int,
                   n_dropped: int) -> dict:
    finite = np.isfinite(s)
    ok, ok_test = s[finite], s[finite & on_test]
    return {"cd_mean_x1e-2": _mean(ok) * 100,
            "cd_median_x1e-2": float(np.median(ok) * 100) if len(ok) else np.nan,
            "cd_mean_test_x1e-2": _mean(ok_test) * 100, "cd_n_params": n_params,
            "cd_params": n_trainable, "n_shapes": len(s), "n_empty_mesh": int((~finite).sum()),
            "n_shapes_dropped": n_dropped}


def _base_note(refs: dict) -> str:
    """What the reference rows measured, per dataset, from the stores' attrs."""
    parts = []
    for dataset, ref in refs.items():
        a = ref.attrs
        sch = a["schedule"]
        parts.append(f"{dataset}: base field of {a['n_base_params']:,} shared frozen "
                     f"parameters (not counted in params); training latents of its "
                     f"{len(ref.train_object_ids)} training instances; latent-only fit of the "
                     f"{a['n_params']} latent entries of each of the {len(ref.test_object_ids)} "
                     f"{a['test_split']}-split instances from the {a['start_latent']} "
                     f"training latent, {sch['steps']} steps x {sch['points']} points, "
                     f"LR {sch['lr_start']:g} -> {sch['lr_end']:g} (cosine), the "
                     "representations' schedule")
    return "; ".join(parts)


def reconstruction_table(image_shards: dict, shape_shards: dict, csv_path, md_path,
                         image_base=None, shape_base=None) -> pd.DataFrame:
    """Per representation: PSNR (2D) and Chamfer ×100 mean / median (3D), parameters.

    ``image_shards`` / ``shape_shards`` map a kind (``nfws.mlora.models.KINDS``) to its
    fitted shard paths; a dataset may be absent (empty dict). ``image_base`` /
    ``shape_base`` are the datasets' base-reference stores (``nfws.mlora.base_reference``):
    with one, the base field's two reference rows come first and every row gets the mean
    over the test-split instances the latent-only fit used (``*_test`` columns).
    """
    pub = published("mlora_reconstruction").set_index("representation")
    refs = {d: read_base_reference(p) for d, p in (("faces", image_base),
                                                   ("shapenet", shape_base)) if p}
    test_ids = {d: set(_base_scores(ref, "test")[0]) for d, ref in refs.items()}
    columns = {"faces": _image_columns, "shapenet": _shape_columns}
    rows = []
    for measurement, label, evaluated_on in BASE_ROWS:
        if not refs:
            break
        row = {"representation": label, "evaluated_on": evaluated_on}
        for dataset, ref in refs.items():
            _, s = _base_scores(ref, measurement)
            on_test = np.full(len(s), measurement == "test")
            n_params = ref.attrs["n_params"]
            row.update(columns[dataset](s, on_test, n_params, n_params, 0))
        rows.append(row)
    for kind in KINDS:
        name = DISPLAY_NAMES[kind]
        row = {"representation": name, "evaluated_on": "all fitted"}
        for dataset, shards in (("faces", image_shards), ("shapenet", shape_shards)):
            if kind in shards:
                s, shard = _scores(shards[kind])
                test = test_ids.get(dataset, set())
                on_test = np.array([str(o) in test for o in shard.object_ids], dtype=bool)
                a = shard.attrs
                row.update(columns[dataset](s, on_test, a["n_params"], a["n_trainable"],
                                            len(a["dropped"])))
        p = pub.loc[name] if name in pub.index else None
        if p is not None:
            row.update({"paper_psnr": p["ffhq_psnr"], "paper_psnr_params": p["ffhq_params"],
                        "paper_cd_mean": p["shapenet_cd_a_x1e-2"],
                        "paper_cd_median": p["shapenet_cd_m_x1e-2"],
                        "paper_cd_params": p["shapenet_params"]})
        rows.append(row)
    df = pd.DataFrame(rows)
    reference = (f" Reference rows ({_base_note(refs)}); *_test columns: means over those "
                 "test-split instances, for every row." if refs else "")
    write_table(df, csv_path, md_path, "Reconstruction of the six weight representations",
                note="PSNR (dB) of fitted images at the configured resolution; Chamfer "
                     "distance (mean of squared nearest distances, both directions, ×100) "
                     "between marching-cubes vertices and ground-truth surface points. "
                     "*_n_params = all entries of one instance's representation (frozen "
                     "ones included; the MLP width is matched to the LoRA kinds' count "
                     "unless fit.mlp_hidden is set); params = trainable entries "
                     "(masked ones excluded), as the paper counts. Paper: FFHQ 128² "
                     "and ShapeNet; ours: the configured (default: synthetic, CPU-sized) data. "
                     "n_empty_mesh counts fields without a surface (excluded from CD); "
                     "n_*_dropped counts diverged fits dropped under on_failure: drop."
                     + reference)
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


def discriminative_metrics(store_paths, cfg: dict, out_parquet, seed: int,
                           tsne_png=None) -> pd.DataFrame:
    """Read fitted shards of one representation, write per-run scores (and a t-SNE plot)."""
    shard = read_weight_shards(store_paths)
    name = shard.attrs["display_name"]
    df = discriminative_runs(shard.weights, shard.labels, cfg, seed)
    df.insert(0, "representation", name)
    write_parquet(df, out_parquet)
    if tsne_png is not None:
        plot_tsne(shard.weights, shard.labels, shard.attrs["class_names"], name, tsne_png, seed)
    return df


def plot_tsne(weights: np.ndarray, labels: np.ndarray, class_names: list, title: str,
              out_png, seed: int) -> None:
    """2-D t-SNE of standardised weights coloured by class."""
    (x,) = standardise(weights)
    tsne_scatter(x, labels, dict(enumerate(class_names)), out_png, f"t-SNE of {title} weights",
                 seed)


def structure_outputs(csv_paths: Sequence, out_png, csv_path, md_path, dataset: str) -> None:
    """The structure plot and table of one dataset from its per-representation CSVs."""
    from nfws.mlora.structure import plot_structure

    plot_structure(list(csv_paths), out_png, f"weight-space structure ({dataset})")
    structure_table(list(csv_paths), csv_path, md_path)


def discriminative(kind_shards: Mapping[str, Sequence], cfg: Mapping, seed: int, out_dir) -> None:
    """Scores over seeded random splits for each representation, plus its t-SNE plot."""
    out_dir = Path(out_dir)
    for kind, shards in kind_shards.items():
        discriminative_metrics(list(shards), dict(cfg), out_dir / f"{kind}.parquet", seed,
                               out_dir / f"tsne_{kind}.png")


def lora_tables(image_shards: Mapping, shape_shards: Mapping, discriminative_dir,
                kinds: Sequence[str], out_dir, base_references: Mapping | None = None) -> None:
    """Reconstruction (with the base field's reference rows of the datasets in
    ``base_references``, {dataset: [store] or store}; an empty list = not run) and
    discriminative tables."""
    out_dir = Path(out_dir)
    refs = {}
    for dataset, paths in (base_references or {}).items():
        paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
        if len(paths) > 1:
            raise ValueError(f"lora_tables: {len(paths)} base references for {dataset}: {paths}")
        if paths:
            refs[dataset] = paths[0]
    reconstruction_table(dict(image_shards), dict(shape_shards),
                         out_dir / "mlora_reconstruction.csv", out_dir / "mlora_reconstruction.md",
                         image_base=refs.get("faces"), shape_base=refs.get("shapenet"))
    discriminative_table([Path(discriminative_dir) / f"{k}.parquet" for k in kinds],
                         out_dir / "mlora_discriminative.csv", out_dir / "mlora_discriminative.md")


def generation_table(metrics: Mapping[str, object], dataset: str, csv_path, md_path) -> None:
    """Generation table of one dataset, beside the paper table matching its classes."""
    from nfws.mlora.config import published_generation_dataset
    from nfws.mlora.generation_tables import write_generation_table

    classes = sorted({c for path in metrics.values()
                      for c in json.loads(Path(path).read_text()).get("classes", [])})
    write_generation_table(dict(metrics), dataset,
                           published_generation_dataset(dataset, classes), csv_path, md_path)


def base_field_curve(reference_path, kind_shards: Mapping[str, Sequence], out_png,
                     dataset: str) -> None:
    """Reconstruction against the base field's training cost: its training curve (scores at
    the snapshots' training latents, ``nfws.mlora.base_reference``) against CPU seconds,
    with the test-split means of the latent-only fit and of every representation as lines."""
    import matplotlib.pyplot as plt

    from nfws.figures import save_figure

    ref = read_base_reference(reference_path)
    image = ref.attrs["metric"] == "psnr_db"
    scale = 1.0 if image else 100.0
    test_ids, test_score = _base_scores(ref, "test")
    test_ids = set(test_ids)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot(ref.curve_cpu_seconds, ref.curve_score * scale, "o-", color="black",
            label="base field, training latents")
    for step, x, y in zip(ref.curve_step, ref.curve_cpu_seconds, ref.curve_score):
        ax.annotate(f"{int(step)}", (x, y * scale), fontsize=6, textcoords="offset points",
                    xytext=(0, 4))
    levels = {"base (latent-only fit)": _mean(test_score)}
    for kind, shards in kind_shards.items():
        s, shard = _scores(shards)
        on_test = np.array([str(o) in test_ids for o in shard.object_ids], dtype=bool)
        levels[DISPLAY_NAMES[kind]] = np.nanmean(s[on_test]) if on_test.any() else np.nan
    colours = plt.get_cmap("tab10")
    for k, (name, value) in enumerate(levels.items()):
        ax.axhline(value * scale, ls="--", lw=1, color=colours(k), label=f"{name} (test split)")
    ax.set_xlabel("base field training, CPU seconds (labels: steps)")
    ax.set_ylabel("PSNR (dB)" if image else "Chamfer distance ×1e-2")
    ax.set_title(f"{dataset}: reconstruction against base-field cost")
    ax.legend(fontsize=7, loc="lower right" if image else "upper right")
    save_figure(fig, out_png)
