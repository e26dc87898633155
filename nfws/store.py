"""Atomic, verified I/O for everything the pipeline writes.

Every writer here builds its output in a temporary sibling and renames it into place on
success, so a killed job never leaves a half-written store that a later stage could take
for a result.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import zarr


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary sibling of ``path``; rename it onto ``path`` when the block succeeds.

    Works for files and directories (Zarr stores). On error the temporary is removed and
    ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        yield target
        if not target.exists():
            raise RuntimeError(f"{path}: writer produced nothing")
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_parquet(df: pd.DataFrame, path) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def read_parquet(path, columns: list[str] | None = None) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: parquet file missing")
    df = pd.read_parquet(path)
    if columns:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}")
    return df


def write_text(text: str, path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(obj, path) -> None:
    write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n", path)


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def save_torch(obj, path) -> None:
    import torch  # here, not at the top: table and retrieval jobs never pay for it

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_torch(path, map_location="cpu"):
    import torch

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: checkpoint missing")
    return torch.load(path, map_location=map_location, weights_only=True)


def config_hash(section) -> str:
    """Stable short hash of a config section, stored in output attrs."""
    blob = json.dumps(section, sort_keys=True, default=_json_default).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def write_zarr(path, arrays: dict[str, np.ndarray], attrs: dict | None = None,
               chunks: dict[str, tuple] | None = None) -> None:
    """Write named arrays (first axis = item, chunked per item unless given) atomically."""
    from nfws import __version__

    with atomic_path(path) as tmp:
        root = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        for name, value in arrays.items():
            value = np.asarray(value)
            if value.dtype.kind in "OU":
                value = value.astype(str)
                arr = root.create_array(name, shape=value.shape, dtype=str)
                arr[...] = value
                continue
            chunk = (chunks or {}).get(name)
            if chunk is None:
                chunk = (1,) + value.shape[1:] if value.ndim > 1 else value.shape
            arr = root.create_array(name, shape=value.shape, dtype=value.dtype,
                                    chunks=tuple(max(1, c) for c in chunk))
            arr[...] = value
        root.attrs.update(json.loads(json.dumps({"nfws_version": __version__, **(attrs or {})},
                                                default=_json_default)))


def open_zarr(path, required: list[str] | None = None):
    """Open a store read-only; fail with the path and missing keys if it is incomplete."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: zarr store missing")
    try:
        root = zarr.open_group(str(path), mode="r")
    except Exception as err:  # zarr raises several types for a broken store
        raise ValueError(f"{path}: not a readable zarr group ({err})") from err
    missing = [k for k in (required or []) if k not in root]
    if missing:
        raise ValueError(f"{path}: missing arrays {missing}")
    return root


def require_attrs(path, attrs, keys, what: str) -> None:
    """Refuse the ``attrs`` of the ``what`` store at ``path`` unless it holds every key of ``keys``."""
    missing = [k for k in keys if k not in attrs]
    if missing:
        raise ValueError(f"{path}: {what} attrs lack {missing}")


def read_zarr(path, names: list[str] | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """Read whole arrays (all, or ``names``) and the attrs of a store."""
    root = open_zarr(path, required=names)
    keys = names if names is not None else sorted(k for k, _ in root.arrays())
    return {k: root[k][...] for k in keys}, dict(root.attrs)


def group_by_parent(paths, order=None) -> dict[str, list[str]]:
    """Group ``.../{key}/{shard}.zarr`` paths by ``key`` (e.g. architecture), keeping
    ``order`` when given (every key in it must have paths)."""
    groups: dict[str, list[str]] = {}
    for p in paths:
        groups.setdefault(Path(p).parent.name, []).append(str(p))
    if order is None:
        return groups
    missing = [k for k in order if k not in groups]
    if missing:
        raise ValueError(f"no shards for {missing} among {sorted(groups)}")
    return {k: groups[k] for k in order}
