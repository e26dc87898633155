"""t-SNE of NeRF embeddings (paper Fig. 3): colour = class, marker = architecture.

The picture shows the paper's qualitative claim: with L_R alone the points group by
architecture, with the contrastive term they group by class across architectures.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402

from nfws.eval.embeddings import embedding_matrix, load_embeddings, select  # noqa: E402
from nfws.eval.figures import save_figure

MARKERS = "o^s*Dvp<>hX"


def tsne_plot(embedding_paths: Mapping[str, object], archs: Sequence[str], out_png, title: str,
              class_names: Sequence[str], split: str = "test", seed: int = 0,
              perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE of the ``split`` embeddings of ``archs``; writes a PNG, returns the points."""
    df = select(load_embeddings({a: embedding_paths[a] for a in archs}), archs, split)
    if len(df) < 3:
        raise ValueError(f"t-SNE: need >= 3 {split} embeddings, got {len(df)}")
    if df["class_index"].max() >= len(class_names):
        raise ValueError(f"t-SNE: class index {df['class_index'].max()} has no name among "
                         f"{len(class_names)} class_names")
    tsne = TSNE(n_components=2, perplexity=min(perplexity, (len(df) - 1) / 3.0), init="pca",
                random_state=seed)
    points = tsne.fit_transform(embedding_matrix(df).astype(np.float64))
    cmap = plt.get_cmap("tab20")
    fig, ax = plt.subplots(figsize=(7, 6))
    for a_i, arch in enumerate(archs):
        for cls in sorted(df["class_index"].unique()):
            sel = ((df["arch"] == arch) & (df["class_index"] == cls)).to_numpy()
            if sel.any():
                ax.scatter(points[sel, 0], points[sel, 1], s=18, color=cmap(int(cls) % 20),
                           marker=MARKERS[a_i % len(MARKERS)], alpha=0.85, linewidths=0)
    class_handles = [plt.Line2D([], [], ls="", marker="o", color=cmap(int(c) % 20),
                                label=class_names[int(c)]) for c in sorted(df["class_index"].unique())]
    arch_handles = [plt.Line2D([], [], ls="", marker=MARKERS[i % len(MARKERS)], color="k", label=a)
                    for i, a in enumerate(archs)]
    ax.legend(handles=class_handles + arch_handles, fontsize=7, loc="center left",
              bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    save_figure(fig, out_png, dpi=120)
    return points
