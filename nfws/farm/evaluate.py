"""The NeRF farm's summary: per architecture, NeRFs kept and dropped, held-out PSNR."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from nfws.eval.tables import write_table
from nfws.fields.shard import read_nerf_shard


def nerf_table(shards: Mapping[str, Sequence], csv_path, md_path) -> pd.DataFrame:
    """One row per architecture over its NeRF shards: shards, NeRFs kept, NeRFs dropped
    (``on_failure: drop``) with their reasons, and the kept NeRFs' held-out PSNR."""
    rows = []
    for arch, paths in shards.items():
        if not paths:
            raise ValueError(f"nerf table: architecture {arch} has no shards")
        psnr, dropped = [], []
        for path in paths:
            shard = read_nerf_shard(path, params=False, arrays=("psnr",))
            psnr.append(shard.psnr)
            dropped += [f"{d['object_id']}: {d['reason']}" for d in shard.dropped]
        psnr = np.concatenate(psnr).astype(np.float64)
        rows.append({"arch": arch, "shards": len(paths), "n_nerfs": len(psnr),
                     "n_dropped": len(dropped), "psnr_median": float(np.median(psnr)),
                     "psnr_min": float(psnr.min()), "psnr_max": float(psnr.max()),
                     "dropped": "; ".join(dropped)})
    df = pd.DataFrame(rows)
    write_table(df, csv_path, md_path, "NeRF farm",
                note="Held-out PSNR (dB, black background) of the NeRFs kept in the shards. "
                     "n_dropped: NeRFs that failed (non-finite, diverged or under "
                     "nerf.fit.psnr_floor) and were dropped under on_failure: drop, each "
                     "listed with its reason.")
    return df
