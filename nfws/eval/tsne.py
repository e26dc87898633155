"""t-SNE scatter plots of embeddings or weights: colour = class, marker = group.

One picture for every track: the GMN embeddings by architecture (paper Fig. 3, where L_R
alone groups points by architecture and the contrastive term groups them by class), the
fitted weights of each Track B representation, and SANE's embeddings by split.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402

from nfws.eval.embeddings import embedding_matrix, load_embeddings, select  # noqa: E402
from nfws.figures import save_figure  # noqa: E402

MARKERS = "o^s*Dvp<>hX"


def tsne_points(x: np.ndarray, seed: int, perplexity: float) -> np.ndarray:
    """2-D t-SNE (PCA init) of the rows of ``x``; the perplexity is capped at (n − 1) / 3."""
    if len(x) < 3:
        raise ValueError(f"t-SNE: need >= 3 points, got {len(x)}")
    return TSNE(n_components=2, perplexity=min(perplexity, (len(x) - 1) / 3.0), init="pca",
                random_state=seed).fit_transform(np.asarray(x, dtype=np.float64))


def tsne_scatter(x: np.ndarray, classes: np.ndarray, class_names: Mapping[int, str], out_png,
                 title: str, seed: int, perplexity: float = 30.0,
                 groups: np.ndarray | None = None, group_names: Sequence[str] = ()) -> np.ndarray:
    """t-SNE of ``x`` as a PNG; point i has colour ``classes[i]`` and the marker of group
    ``groups[i]`` (an index into ``group_names``). Returns the 2-D points."""
    classes = np.asarray(classes)
    groups = np.zeros(len(x), dtype=np.int64) if groups is None else np.asarray(groups)
    if not len(classes) == len(groups) == len(x):
        raise ValueError(f"t-SNE: {len(x)} points, {len(classes)} classes, {len(groups)} groups")
    points = tsne_points(x, seed, perplexity)
    cmap = plt.get_cmap("tab20")
    fig, ax = plt.subplots(figsize=(7, 6))
    present = sorted(int(c) for c in np.unique(classes))
    for g in sorted(int(g) for g in np.unique(groups)):
        for c in present:
            sel = (groups == g) & (classes == c)
            if sel.any():
                ax.scatter(points[sel, 0], points[sel, 1], s=18, color=cmap(c % 20),
                           marker=MARKERS[g % len(MARKERS)], alpha=0.85, linewidths=0)
    handles = [plt.Line2D([], [], ls="", marker="o", color=cmap(c % 20),
                          label=class_names.get(c, str(c))) for c in present]
    handles += [plt.Line2D([], [], ls="", marker=MARKERS[i % len(MARKERS)], color="k", label=n)
                for i, n in enumerate(group_names)]
    ax.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5),
              frameon=False)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    save_figure(fig, out_png, dpi=120)
    return points


def tsne_plot(embedding_paths: Mapping[str, object], archs: Sequence[str], out_png, title: str,
              class_names: Sequence[str], split: str = "test", seed: int = 0,
              perplexity: float = 30.0) -> np.ndarray:
    """t-SNE of the ``split`` embeddings of ``archs`` (marker = architecture)."""
    df = select(load_embeddings({a: embedding_paths[a] for a in archs}), archs, split)
    if df["class_index"].max() >= len(class_names):
        raise ValueError(f"t-SNE: class index {df['class_index'].max()} has no name among "
                         f"{len(class_names)} class_names")
    arch_pos = {a: i for i, a in enumerate(archs)}
    return tsne_scatter(embedding_matrix(df), df["class_index"].to_numpy(),
                        dict(enumerate(class_names)), out_png, title, seed, perplexity,
                        groups=df["arch"].map(arch_pos).to_numpy(), group_names=list(archs))
