"""PyG access to graph shards: a dataset of ``Data`` graphs and a fast batcher.

Every NeRF of one architecture shares one topology, so a batch need not be collated
graph by graph: :class:`GraphBatcher` keeps each architecture's topology as tensors (on
the training device) and caches the concatenated topology of a batch pattern (the tuple
of architectures in the batch, e.g. eight times ``HASH``); per batch only the edge values
are read and stacked. Mixed-architecture batches (the contrastive sampler puts one object
in two architectures into a batch) reuse the same cache. The result is a real
``torch_geometric.data.Batch`` equal to ``Batch.from_data_list`` of the same graphs.
Cached topology tensors are shared between batches: treat ``x``, ``edge_index``,
``batch`` and ``ptr`` as read-only.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import Batch, Data

from nfws.data.manifest import read_manifest
from nfws.graphs.store import GraphShard, open_graph_shard
from nfws.graphs.topology import Topology

MANIFEST_COLUMNS = ["object_id", "class_index", "split"]


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class _Block:
    """Concatenated topology of one batch pattern (pointers also kept on the CPU, where
    PyG keeps a batch's slice bookkeeping)."""

    x: torch.Tensor
    edge_index: torch.Tensor
    static: torch.Tensor      # [sum E, 5] edge attrs without the value
    batch: torch.Tensor
    ptr: torch.Tensor
    ptr_cpu: torch.Tensor
    edge_ptr_cpu: torch.Tensor


class GraphBatcher:
    """Collates graphs of known architectures from cached topology blocks."""

    def __init__(self, topologies: Iterable[Topology], device=None, cache_size: int = 16):
        self.device = torch.device(device) if device is not None else default_device()
        self.cache_size = cache_size
        self._single = {
            t.spec.name: (torch.tensor(t.x, device=self.device),
                          torch.tensor(t.edge_index, device=self.device),
                          torch.tensor(t.edge_attr, device=self.device))
            for t in topologies
        }
        self._blocks: OrderedDict[tuple[str, ...], _Block] = OrderedDict()

    def _block(self, archs: tuple[str, ...]) -> _Block:
        if archs in self._blocks:
            self._blocks.move_to_end(archs)
            return self._blocks[archs]
        unknown = sorted(set(archs) - set(self._single))
        if unknown:
            raise KeyError(f"no topology for architectures {unknown}")
        parts = [self._single[a] for a in archs]
        n_nodes = torch.tensor([p[0].shape[0] for p in parts])
        n_edges = torch.tensor([p[1].shape[1] for p in parts])
        zero = torch.zeros(1, dtype=torch.long)
        ptr_cpu = torch.cat([zero, n_nodes.cumsum(0)])
        ptr = ptr_cpu.to(self.device)
        edge_index = torch.cat([p[1] for p in parts], dim=1)
        edge_index += torch.repeat_interleave(ptr[:-1], n_edges.to(self.device))
        block = _Block(
            x=torch.cat([p[0] for p in parts]),
            edge_index=edge_index,
            static=torch.cat([p[2] for p in parts]),
            batch=torch.repeat_interleave(torch.arange(len(parts), device=self.device),
                                          n_nodes.to(self.device)),
            ptr=ptr,
            ptr_cpu=ptr_cpu,
            edge_ptr_cpu=torch.cat([zero, n_edges.cumsum(0)]),
        )
        self._blocks[archs] = block
        if len(self._blocks) > self.cache_size:
            self._blocks.popitem(last=False)
        return block

    def collate(self, archs: Sequence[str], values: Sequence[np.ndarray], y: Sequence[int],
                object_ids: Sequence[str]) -> Batch:
        """Batch of graphs ``i`` with architecture ``archs[i]`` and edge values ``values[i]``."""
        archs = tuple(archs)
        block = self._block(archs)
        flat = torch.as_tensor(np.concatenate(values), device=self.device)
        if flat.shape[0] != block.static.shape[0]:
            raise ValueError(f"values hold {flat.shape[0]} edges, architectures {archs} "
                             f"have {block.static.shape[0]}")
        b = len(archs)
        counts = torch.arange(b + 1)
        out = Batch(x=block.x, edge_index=block.edge_index,
                    edge_attr=torch.cat([flat[:, None], block.static], dim=1),
                    y=torch.tensor(np.asarray(y, dtype=np.int64), device=self.device),
                    object_id=list(object_ids), arch=list(archs),
                    batch=block.batch, ptr=block.ptr)
        zeros = torch.zeros(b, dtype=torch.long)
        out._num_graphs = b
        out._slice_dict = {"x": block.ptr_cpu, "edge_index": block.edge_ptr_cpu,
                           "edge_attr": block.edge_ptr_cpu, "y": counts,
                           "object_id": counts, "arch": counts}
        out._inc_dict = {"x": zeros, "edge_index": block.ptr_cpu[:-1], "edge_attr": zeros,
                         "y": zeros, "object_id": None, "arch": None}
        return out


class GraphDataset(torch.utils.data.Dataset):
    """Graphs of the given shards, restricted to ``archs`` and a manifest ``split``.

    Labels come from the manifest (object_id, class_index, split). ``records`` lists every
    graph (object_id, arch, class_index, split, shard, row); ``index_of`` finds a graph by
    object and architecture, for samplers that pair architectures.
    """

    def __init__(self, shards: Sequence, manifest, split: str | None = None,
                 archs: Sequence[str] | None = None, device=None):
        labels = read_manifest(manifest, MANIFEST_COLUMNS).set_index("object_id")
        self.shards: list[GraphShard] = []
        frames = []
        for path in shards:
            shard = open_graph_shard(path)
            if archs is not None and shard.arch not in archs:
                continue
            missing = sorted(set(shard.object_ids) - set(labels.index))
            if missing:
                raise ValueError(f"{path}: objects {missing[:5]} (of {len(missing)}) are "
                                 f"not in the manifest {manifest}")
            rec = labels.loc[shard.object_ids, ["class_index", "split"]].reset_index()
            rec["arch"] = shard.arch
            rec["shard"] = len(self.shards)
            rec["row"] = np.arange(len(rec))
            if split is not None:
                rec = rec[rec["split"] == split]
            self.shards.append(shard)
            frames.append(rec)
        if archs is not None:
            absent = sorted(set(archs) - {s.arch for s in self.shards})
            if absent:
                raise ValueError(f"no graph shard of architectures {absent} among {list(shards)}")
        self.records = (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame())
        if self.records.empty:
            raise ValueError(f"no graphs of split {split!r} and architectures {archs} in "
                             f"{list(shards)}")
        dup = self.records.duplicated(["object_id", "arch"])
        if dup.any():
            raise ValueError(f"object {self.records.object_id[dup].iloc[0]!r} appears twice "
                             f"as architecture {self.records.arch[dup].iloc[0]!r} in {list(shards)}")
        self._lookup = {(o, a): i for i, (o, a) in
                        enumerate(zip(self.records.object_id, self.records.arch))}
        self.batcher = GraphBatcher({s.arch: s.topology for s in self.shards}.values(), device)

    def __len__(self) -> int:
        return len(self.records)

    def index_of(self, object_id: str, arch: str) -> int:
        try:
            return self._lookup[(object_id, arch)]
        except KeyError:
            raise KeyError(f"no graph of object {object_id!r} as architecture {arch!r}") from None

    def read_values(self, indices: Sequence[int]) -> list[np.ndarray]:
        """Edge values of the given graphs, reading each shard once."""
        rec = self.records.iloc[np.asarray(indices, dtype=np.int64)]
        out: list[np.ndarray | None] = [None] * len(rec)
        for shard_id, pos in rec.groupby("shard", sort=False).indices.items():
            rows = self.shards[shard_id].read_values(rec["row"].to_numpy()[pos])
            for p, row in zip(pos, rows):
                out[p] = row
        return out

    def __getitem__(self, i: int) -> Data:
        rec = self.records.iloc[int(i)]
        topo = self.shards[rec["shard"]].topology
        values = torch.from_numpy(self.read_values([int(i)])[0])
        return Data(x=torch.tensor(topo.x), edge_index=torch.tensor(topo.edge_index),
                    edge_attr=torch.cat([values[:, None], torch.tensor(topo.edge_attr)], 1),
                    y=torch.tensor([int(rec["class_index"])]),
                    object_id=str(rec["object_id"]), arch=str(rec["arch"]))

    def batch(self, indices: Sequence[int]) -> Batch:
        """The graphs at ``indices`` as one batch, through the cached-topology batcher."""
        rec = self.records.iloc[np.asarray(indices, dtype=np.int64)]
        return self.batcher.collate(rec["arch"].tolist(), self.read_values(indices),
                                    rec["class_index"].to_numpy(), rec["object_id"].tolist())


class GraphLoader:
    """Seeded mini-batches of a :class:`GraphDataset` through its fast batcher."""

    def __init__(self, dataset: GraphDataset, batch_size: int, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.dataset, self.batch_size = dataset, batch_size
        self.shuffle, self.drop_last = shuffle, drop_last
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.dataset)
        order = (torch.randperm(n, generator=self.generator) if self.shuffle
                 else torch.arange(n)).numpy()
        for b in range(len(self)):
            yield self.dataset.batch(order[b * self.batch_size:(b + 1) * self.batch_size])
