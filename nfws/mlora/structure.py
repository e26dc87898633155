"""Weight-space structure (paper §4.2): stability under perturbed initialisation and LMC.

For each of the first ``n_instances`` instances the representation is fitted from the
shared initialisation code ι1 and, for every λ in ``lambdas``, again from
√(1−λ²)·ι1 + λ·ι2 (ι2 ~ N(0, I), independent per instance and λ). All fits run in one
batch and see the same point samples, so only the initialisation differs. Reported per
(instance, λ): cosine similarity of the two flattened weight vectors, and the
reconstruction error of the endpoint and midpoint weights (φ + φ_λ)/2. The paper's
barrier is the midpoint error itself (Chamfer distance for shapes; here MSE for images);
``barrier_excess`` subtracts the mean endpoint error as in the usual LMC definition.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from nfws.config_files import Section
from nfws.data.targets import load_targets
from nfws.metrics import reconstruction_scores
from nfws.device import choose_device
from nfws.mlora.train import fit_checkpoint, fit_params, make_representation
from nfws.mlora.models import DISPLAY_NAMES
from nfws.figures import save_figure
from nfws.store import write_text


@dataclass(frozen=True)
class StructureConfig(Section):
    """The ``lora.structure`` section: how many instances, and the interpolation weights."""

    SECTION = "lora.structure"
    n_instances: int
    lambdas: tuple

    def check(self, section: str) -> None:
        if any(not 0 <= float(x) <= 1 for x in self.lambdas):
            self.bad(section, "lambdas", "must lie in [0, 1]")


def _errors(rep, flat, indices, targets, cfg, seed, device) -> np.ndarray:
    params = {k: v.to(device) for k, v in rep.unflatten(flat).items()}
    rep.to(device)
    scores = reconstruction_scores(lambda p: rep.forward(params, p), indices, targets, cfg,
                                   seed, device)
    rep.to("cpu")
    return 10 ** (-scores / 10) if targets.kind == "image" else scores


def weight_space_structure(kind: str, base_ckpt, targets, fit_cfg: dict, cfg: dict,
                           out_csv, seed: int, device=None,
                           base_cfg: dict | None = None) -> pd.DataFrame:
    """Fit pairs per (instance, λ) and write one CSV row each (see module doc); a base
    file of other targets or of another config than ``base_cfg`` is refused."""
    cfg = StructureConfig.pick(cfg)
    lambdas = [float(x) for x in cfg.lambdas]
    device = device or choose_device("auto")
    data = load_targets(targets)
    n = min(int(cfg.n_instances), len(data))
    rep = make_representation(kind, base_ckpt, data, fit_cfg, base_cfg)
    gen = torch.Generator().manual_seed(seed)
    iota1 = rep.draw_codes(1, gen)
    codes = {k: [v.expand(n, *v.shape[1:])] for k, v in iota1.items()}
    for lam in lambdas:
        iota2 = rep.draw_codes(n, gen)
        for k in codes:
            codes[k].append(math.sqrt(1 - lam ** 2) * iota1[k] + lam * iota2[k])
    start = rep.init({k: torch.cat(v) for k, v in codes.items()})
    indices = list(range(n)) * (1 + len(lambdas))
    checkpoint = fit_checkpoint(out_csv, rep, start, indices, fit_cfg,
                                seed, targets, base_ckpt)     # a rerun after a kill resumes
    fitted, _ = fit_params(rep, start, data, indices, fit_cfg, seed, device, checkpoint,
                           desc=f"structure {kind}")
    flat = rep.flatten(fitted).reshape(1 + len(lambdas), n, -1)
    ref = flat[0]
    err_ref = _errors(rep, ref, list(range(n)), data, fit_cfg, seed, device)
    rows = []
    for j, lam in enumerate(lambdas):
        other = flat[1 + j]
        cos = torch.nn.functional.cosine_similarity(ref.double(), other.double(), dim=1)
        err_other = _errors(rep, other, list(range(n)), data, fit_cfg, seed, device)
        err_mid = _errors(rep, (ref + other) / 2, list(range(n)), data, fit_cfg, seed, device)
        for i in range(n):
            rows.append({"representation": DISPLAY_NAMES[kind],
                         "object_id": str(data.object_ids[i]), "lambda": lam,
                         "cosine": float(cos[i]), "error_a": float(err_ref[i]),
                         "error_b": float(err_other[i]), "barrier": float(err_mid[i]),
                         "barrier_excess": float(err_mid[i] - (err_ref[i] + err_other[i]) / 2),
                         "error_metric": "mse" if data.kind == "image" else "chamfer"})
    df = pd.DataFrame(rows)
    write_text(df.to_csv(index=False), out_csv)
    checkpoint.clear()
    return df


def plot_structure(csv_paths, out_png, title: str) -> None:
    """Cosine similarity and barrier vs λ (mean ± std over instances), one line per repr."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = pd.concat([pd.read_csv(p) for p in csv_paths])
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for name, part in df.groupby("representation", sort=False):
        stats = part.groupby("lambda")[["cosine", "barrier"]].agg(["mean", "std"])
        for ax, col in zip(axes, ("cosine", "barrier")):
            m, s = stats[(col, "mean")], stats[(col, "std")].fillna(0)
            ax.plot(stats.index, m, marker="o", ms=3, label=name)
            ax.fill_between(stats.index, m - s, m + s, alpha=0.15)
    metric = df["error_metric"].iloc[0]
    axes[0].set(xlabel="λ", ylabel="cosine similarity", title="weight similarity")
    axes[1].set(xlabel="λ", ylabel=f"midpoint {metric}", title="LMC barrier")
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    save_figure(fig, out_png, dpi=120, bbox_inches="tight")
