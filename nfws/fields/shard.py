"""The NeRF shard: ``results/nerfs/{arch}/{shard}.zarr``, B NeRFs of one architecture.

Arrays: every parameter of ``spec.param_shapes()`` ([B, *shape], named ``mlp.i``,
``triplane``, ``hash``), ``object_ids`` str [B], ``psnr`` [B] (held-out PSNR),
``loss_curve`` float32 [B, T] and ``sample_box`` float32 [B, 2, 3] (the box each NeRF was
sampled in). Attrs: ``arch`` (ArchSpec.to_dict()), ``config_hash``, ``dropped`` (the
NeRFs the farm dropped, [{object_id, reason}]), ``heldout_views``, ``seed``.

:func:`read_nerf_shard` checks a shard against its ArchSpec from the arrays' metadata and
loads only what its caller asks for; :func:`write_nerf_shard` checks and writes one
atomically. :func:`write_random_nerf_shard` writes random NeRFs for tests and benchmarks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nfws.fields.spec import ArchSpec
from nfws.store import open_zarr, write_zarr

#: per-NeRF arrays besides the parameters and object_ids, in the order they are written
ARRAYS = ("psnr", "loss_curve", "sample_box")


@dataclass(frozen=True, eq=False)
class NerfShard:
    """A NeRF shard's contents; what a reader did not ask for is None (``params`` empty)."""

    path: Path
    spec: ArchSpec
    object_ids: list[str]
    params: dict[str, np.ndarray] = field(default_factory=dict)
    psnr: np.ndarray | None = None
    loss_curve: np.ndarray | None = None
    sample_box: np.ndarray | None = None
    config_hash: str | None = None
    dropped: list[dict] = field(default_factory=list)
    heldout_views: list[int] | None = None
    seed: int | None = None


def read_strings(array) -> np.ndarray:
    """A zarr string array as a numpy ``str`` array (zarr returns numpy's StringDType)."""
    return np.array([str(v) for v in array[...].tolist()], dtype=str)


def spec_of(attrs: dict, path) -> ArchSpec:
    """The ArchSpec recorded in a store's ``arch`` attr."""
    if "arch" not in attrs:
        raise ValueError(f"{path}: attrs lack 'arch' (the ArchSpec of the stored NeRFs)")
    try:
        return ArchSpec.from_dict(data=attrs["arch"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: attrs 'arch' is not a valid ArchSpec ({err})") from err


def _check(path, spec: ArchSpec, object_ids: list[str], shapes: dict[str, tuple],
           params: bool) -> None:
    """Parameter shapes against ``spec`` (when ``params``), one row per object id in every
    array of ``shapes``, and unique object ids."""
    for name, shape in spec.param_shapes().items() if params else ():
        if name not in shapes:
            raise ValueError(f"{path}: missing parameter array {name!r} of "
                             f"architecture {spec.name!r}")
        if tuple(shapes[name][1:]) != tuple(shape) or len(shapes[name]) != len(shape) + 1:
            raise ValueError(f"{path}: array {name!r} has shape {tuple(shapes[name])}, "
                             f"architecture {spec.name!r} needs [n, {', '.join(map(str, shape))}]")
    rows = {name: s[0] for name, s in shapes.items() if s[0] != len(object_ids)}
    if rows:
        raise ValueError(f"{path}: arrays hold other numbers of NeRFs than the "
                         f"{len(object_ids)} object_ids: {rows}")
    if len(set(object_ids)) != len(object_ids):
        raise ValueError(f"{path}: {len(object_ids)} NeRFs need as many unique object_ids, "
                         f"got {len(set(object_ids))} unique")


def read_nerf_shard(path, params: bool = True, arrays=ARRAYS) -> NerfShard:
    """Read a NeRF shard: attrs and object_ids always, the parameters when ``params``, and
    the per-NeRF ``arrays`` (of :data:`ARRAYS`) asked for. Everything read is checked
    before it is loaded; an error names the file and what is wrong."""
    unknown = sorted(set(arrays) - set(ARRAYS))
    if unknown:
        raise ValueError(f"{path}: unknown NeRF shard arrays {unknown}; known {list(ARRAYS)}")
    root = open_zarr(path, required=["object_ids", *arrays])
    attrs = dict(root.attrs)
    spec = spec_of(attrs, path)
    object_ids = read_strings(root["object_ids"]).tolist()
    names = [*spec.param_shapes(), *arrays] if params else list(arrays)
    _check(path, spec, object_ids, {k: root[k].shape for k in names if k in root}, params)
    return NerfShard(Path(path), spec, object_ids,
                     {k: root[k][...] for k in spec.param_shapes()} if params else {},
                     **{k: root[k][...] for k in arrays},
                     config_hash=attrs.get("config_hash"), dropped=list(attrs.get("dropped", [])),
                     heldout_views=attrs.get("heldout_views"), seed=attrs.get("seed"))


def write_nerf_shard(shard: NerfShard) -> None:
    """Check ``shard`` and write it to ``shard.path`` atomically; arrays and attrs left None
    are not written."""
    params = {k: np.asarray(shard.params[k]) for k in shard.spec.param_shapes()
              if k in shard.params}
    arrays = {k: np.asarray(getattr(shard, k)) for k in ARRAYS if getattr(shard, k) is not None}
    _check(shard.path, shard.spec, shard.object_ids,
           {k: v.shape for k, v in {**params, **arrays}.items()}, params=True)
    attrs = {"arch": shard.spec.to_dict(), "config_hash": shard.config_hash,
             "dropped": list(shard.dropped), "heldout_views": shard.heldout_views,
             "seed": shard.seed}
    write_zarr(shard.path, {**params, "object_ids": np.array(shard.object_ids, dtype=str),
                            **arrays},
               {k: v for k, v in attrs.items() if v is not None})


def write_random_nerf_shard(path, spec: ArchSpec, n: int, seed: int,
                            object_ids: list[str] | None = None) -> list[str]:
    """A NeRF shard of ``n`` NeRFs with N(0, 0.1) weights, PSNR 30 and a flat loss curve;
    returns the object ids (``object_ids``, or ``{arch}_{seed}_{i}``).

    Hash entries beyond a level's true size are zero, as the farm leaves them.
    """
    rng = np.random.default_rng(seed)
    params = {name: rng.normal(0.0, 0.1, (n,) + shape).astype(np.float32)
              for name, shape in spec.param_shapes().items()}
    if "hash" in params:
        for level, size in enumerate(spec.level_sizes()):
            params["hash"][:, level, size:] = 0.0
    ids = object_ids or [f"{spec.name.lower()}_{seed}_{i:04d}" for i in range(n)]
    if len(ids) != n:
        raise ValueError(f"object_ids: {len(ids)} ids for {n} NeRFs")
    write_nerf_shard(NerfShard(Path(path), spec, list(ids), params,
                               psnr=np.full(n, 30.0, np.float32),
                               loss_curve=np.zeros((n, 4), np.float32), config_hash="synthetic"))
    return ids
