"""Embedding NeRFs with a trained encoder (stage ``embed``): one row per NeRF with its
object, architecture, split, class and embedding."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from nfws.device import pick_device
from nfws.gmn.train import EncoderInputs, build_encoder, to_device
from nfws.store import load_torch, write_parquet


def load_encoder(model_path, device=None) -> torch.nn.Module:
    """The trained encoder of a ``model.pt`` written by :func:`nfws.gmn.train.train_encoder`, in eval mode."""
    state = load_torch(model_path, map_location=pick_device(device))
    encoder = build_encoder(state["config"]["encoder"])
    encoder.load_state_dict(state["encoder"])
    return encoder.to(pick_device(device)).eval()


@torch.no_grad()
def embed(model_path, inputs: EncoderInputs, out_path, batch_size: int = 16,
          splits: Sequence[str] | None = None, device=None, progress: bool = True,
          reference: Callable[[str], object] | None = None) -> pd.DataFrame:
    """Embed the items of ``inputs`` (those of ``splits``, default all) -> parquet with
    object_id, arch, split, class_index and ``emb`` (a float32 list per row).

    ``reference`` (arch -> a one-item encoder input): each embedding minus the embedding
    of its architecture's reference (:mod:`nfws.gmn.reference`)."""
    device = pick_device(device)
    encoder = load_encoder(model_path, device)
    keep = inputs.meta.index[inputs.meta["split"].isin(splits)] if splits is not None else inputs.meta.index
    if len(keep) == 0:
        raise ValueError(f"embed: no items of splits {splits}")
    out = []
    for s in tqdm(range(0, len(keep), batch_size), desc="embed", disable=not progress):
        items = [int(i) for i in keep[s:s + batch_size]]
        out.append(encoder(to_device(inputs.batch(items), device)).float().cpu().numpy())
    emb = np.concatenate(out)
    if reference is not None:
        archs = inputs.meta.loc[keep, "arch"].to_numpy()
        for arch in np.unique(archs):
            ref = encoder(to_device(reference(arch), device)).float().cpu().numpy()
            emb[archs == arch] -= ref[0]
    if not np.isfinite(emb).all():
        raise FloatingPointError(f"{model_path}: encoder produced non-finite embeddings")
    df = inputs.meta.loc[keep].reset_index(drop=True)
    df["emb"] = list(emb.astype(np.float32))
    write_parquet(df, out_path)
    return df
