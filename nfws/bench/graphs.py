"""Benchmark of the graph stage: shared-topology shards and the cached-topology batcher.

Baselines, measured in the same run on the same synthetic shards (64 NeRFs each of MLP,
TRI and HASH at their paper sizes):
- conversion: a per-graph store that builds each NeRF's graph and saves its node
  features, edge index and full edge attributes (``torch.save`` of a PyG ``Data``);
- loading: PyG's standard ``DataLoader`` (a ``Data`` per graph, ``Batch.from_data_list``).
Ours: :func:`nfws.graphs.store.convert_shard` and :class:`nfws.graphs.dataset.GraphLoader`.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

from nfws.fields.shard import read_nerf_shard, write_random_nerf_shard
from nfws.fields.spec import ArchSpec
from nfws.graphs.dataset import GraphDataset, GraphLoader
from nfws.graphs.store import convert_shard
from nfws.graphs.topology import topology, values_from_weights
from nfws.store import write_parquet

BENCH_ARCHS = (
    ArchSpec("MLP", "MLP"),
    ArchSpec("TRI", "TRI", activation="sine", triplane_res=32, triplane_channels=16),
    ArchSpec("HASH", "HASH", hash_levels=4, hash_log2_T=12, hash_features=2),
)


def _bytes_on_disk(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def _per_graph_store(nerf_shard, out_dir: Path) -> None:
    """Baseline: build and save every NeRF's complete graph on its own."""
    shard = read_nerf_shard(nerf_shard, arrays=())
    spec = shard.spec
    out_dir.mkdir(parents=True)
    for i, oid in enumerate(shard.object_ids):
        topo = topology.__wrapped__(spec)
        values = values_from_weights(spec, {k: v[i:i + 1] for k, v in shard.params.items()})[0]
        edge_attr = np.concatenate([values[:, None], topo.edge_attr], axis=1)
        torch.save(Data(x=torch.from_numpy(topo.x.copy()),
                        edge_index=torch.from_numpy(topo.edge_index.copy()),
                        edge_attr=torch.from_numpy(edge_attr), object_id=str(oid)),
                   out_dir / f"{oid}.pt")


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _graphs_per_second(batches, n_graphs: int, epochs: int) -> float:
    def consume():
        for _ in range(epochs):
            for batch in batches:
                assert batch.edge_attr.shape[1] == 6
    return epochs * n_graphs / _timed(consume)


def _loader_rates(dataset: GraphDataset, batch_size: int, epochs: int, seed: int) -> dict:
    """Graphs/s delivered by our loader and by PyG's DataLoader over the same dataset."""
    fast = _graphs_per_second(GraphLoader(dataset, batch_size, seed=seed), len(dataset), epochs)
    standard = _graphs_per_second(
        DataLoader(dataset, batch_size=batch_size, shuffle=True,
                   generator=torch.Generator().manual_seed(seed)), len(dataset), epochs)
    return {"ours": fast, "baseline": standard, "ratio": fast / standard}


def run(n_nerfs: int = 64, batch_size: int = 8, epochs: int = 2, seed: int = 0) -> dict:
    """Conversion rate and bytes per NeRF (ours vs per-graph store), and loader graphs/s
    (ours vs PyG collation) per family and for shuffled mixed-architecture batches."""
    per_family, total = {}, {"ours": 0.0, "baseline": 0.0}
    ids = [f"object_{i:04d}" for i in range(n_nerfs)]
    with tempfile.TemporaryDirectory(prefix="nfws_bench_graphs_") as tmp:
        tmp = Path(tmp)
        manifest = tmp / "manifest.parquet"
        write_parquet(pd.DataFrame({"object_id": ids,
                                    "class_name": [f"c{k}" for k in np.arange(n_nerfs) % 13],
                                    "class_index": np.arange(n_nerfs) % 13,
                                    "split": "train", "source": ""}), manifest)
        shards = []
        for k, spec in enumerate(BENCH_ARCHS):
            nerf_path = tmp / "nerfs" / f"{spec.name}.zarr"
            write_random_nerf_shard(nerf_path, spec, n_nerfs, seed + k, object_ids=ids)
            ours_path = tmp / "graphs" / spec.name / "0.zarr"
            base_path = tmp / "per_graph" / spec.name
            t_ours = _timed(lambda: convert_shard(nerf_path, ours_path))
            t_base = _timed(lambda: _per_graph_store(nerf_path, base_path))
            total["ours"] += t_ours
            total["baseline"] += t_base
            shards.append(ours_path)
            topo = topology(spec)
            per_family[spec.name] = {
                "nodes": topo.n_nodes, "edges": topo.n_edges,
                "convert_nerfs_per_s": {"ours": n_nerfs / t_ours, "baseline": n_nerfs / t_base},
                "bytes_per_nerf": {"ours": _bytes_on_disk(ours_path) / n_nerfs,
                                   "baseline": _bytes_on_disk(base_path) / n_nerfs},
                "loader_graphs_per_s": _loader_rates(GraphDataset([ours_path], manifest, device="cpu"),
                                                     batch_size, epochs, seed),
            }
        mixed = _loader_rates(GraphDataset(shards, manifest, device="cpu"), batch_size, 1, seed)
    n_total = n_nerfs * len(BENCH_ARCHS)
    ours, baseline = n_total / total["ours"], n_total / total["baseline"]
    return {"name": "graphs", "unit": "NeRFs converted/s (MLP+TRI+HASH)",
            "ours": ours, "baseline": baseline, "ratio": ours / baseline,
            "n_nerfs_per_family": n_nerfs, "batch_size": batch_size,
            "torch_threads": torch.get_num_threads(), "families": per_family,
            "mixed_loader_graphs_per_s": mixed}


if __name__ == "__main__":
    print(json.dumps(run()))
