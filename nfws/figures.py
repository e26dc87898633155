"""Writing matplotlib figures: atomically, as PNG, and closed afterwards."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nfws.store import atomic_path  # noqa: E402


def save_figure(fig, path, dpi: int = 120, **savefig_kwargs) -> None:
    """Save ``fig`` as a PNG at ``path`` (temporary sibling, renamed on success), close it."""
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi, **savefig_kwargs)
    finally:
        plt.close(fig)
