"""Track B's weight shards: one representation's fitted instances of one shard, one zarr store
each (``results/lora/{dataset}/{repr}/{shard}.zarr``).

Written by :func:`nfws.mlora.train.fit_instances`; read by the evaluation, the weight
diffusion and generation, always through this module. Arrays (``ARRAYS``): ``weights``
float32 [n, P] (frozen entries included, in ``layout`` order), ``frozen`` uint8 [P],
``object_ids`` [n], ``labels`` int64 [n], ``score`` float32 [n] (PSNR dB or Chamfer
distance, see attrs ``metric``), ``loss_curve`` float32 [n, n_logged]. Attrs (``ATTRS``):
kind, display_name, layout (name, shape, layer, role, n_frozen per tensor, in flattening
order), n_params, n_trainable, metric, target_kind, coord_dim, out_dim, class_names, fit
(the fit config), config_hash, seed, shard, n_shards, base_ckpt, base_config (None for MLP
kinds), template_object_id, dropped (object_id and reason of each diverged fit left out).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nfws.store import read_zarr, require_attrs, write_zarr

ARRAYS = ("weights", "frozen", "object_ids", "labels", "score", "loss_curve")
ATTRS = ("kind", "display_name", "layout", "n_params", "n_trainable", "metric", "target_kind",
         "coord_dim", "out_dim", "class_names", "fit", "config_hash", "seed", "shard",
         "n_shards", "base_ckpt", "base_config", "template_object_id", "dropped")
#: Attrs every shard of one representation shares.
SHARED_ATTRS = ("kind", "config_hash", "layout")


@dataclass(frozen=True)
class WeightShard:
    """The arrays and attrs of a weight shard (module doc)."""

    weights: np.ndarray
    frozen: np.ndarray
    object_ids: np.ndarray
    labels: np.ndarray
    score: np.ndarray
    loss_curve: np.ndarray
    attrs: dict


def write_weight_shard(path, shard: WeightShard) -> None:
    """Write ``shard`` (every attr of ``ATTRS`` required); the weights in one chunk."""
    require_attrs(path, shard.attrs, ATTRS, "weight shard")
    n, p = shard.weights.shape
    write_zarr(path, {name: getattr(shard, name) for name in ARRAYS},
               chunks={"weights": (n, p), "frozen": (p,)}, attrs=shard.attrs)


def read_weight_shard(path) -> WeightShard:
    """Read one shard; a missing array or attr, or weights that do not match the object ids
    and the layout, is an error naming the file."""
    arrays, attrs = read_zarr(path, list(ARRAYS))
    require_attrs(path, attrs, ATTRS, "weight shard")
    shape = (len(arrays["object_ids"]), sum(int(np.prod(e["shape"])) for e in attrs["layout"]))
    if arrays["weights"].shape != shape:
        raise ValueError(f"{path}: weights shape {arrays['weights'].shape} does not match "
                         f"{shape[0]} object ids x {shape[1]} layout values")
    return WeightShard(**arrays, attrs=attrs)


def read_weight_shards(paths) -> WeightShard:
    """The shards of one representation as one: instances concatenated in ``paths`` order,
    ``frozen`` and attrs of the first shard with every shard's ``dropped``. A shard of
    another kind, config or layout than the first is refused."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not paths:
        raise ValueError("read_weight_shards: no shard paths given")
    shards = [read_weight_shard(p) for p in paths]
    first = shards[0].attrs
    for path, shard in zip(paths, shards):
        differ = [k for k in SHARED_ATTRS if shard.attrs[k] != first[k]]
        if differ:
            raise ValueError(f"{path}: {differ} differ from those of {paths[0]}")
    joined = {name: np.concatenate([getattr(s, name) for s in shards])
              for name in ARRAYS if name != "frozen"}
    return WeightShard(**joined, frozen=shards[0].frozen,
                       attrs={**first, "dropped": [d for s in shards for d in s.attrs["dropped"]]})
