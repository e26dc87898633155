"""Benchmark of the GMN encoder's graph groups: forward + backward of config.yaml's encoder
on a batch of 8 graphs of one family (the real MLP, TRI and HASH topologies, random
values), the batch as one group (baseline) against cache-sized groups of whole graphs
(ours, ``GMNEncoder.cpu_chunk_edges``). One thread, CPU time, the median of 3 passes after
one untimed pass, both in the same process on the same batches. ratio = graphs/s of ours
over the baseline's, a harmonic mean over the three families (an ALL epoch visits them
equally often). The outputs of the two are compared and must agree.
"""
from __future__ import annotations

import json
import time

import numpy as np
import torch

from nfws.bench._threads import torch_threads
from nfws.bench.gmn import FAMILIES, random_batch
from nfws.config_files import repo_section
from nfws.gmn.train import build_encoder
from nfws.graphs.dataset import GraphBatcher
from nfws.graphs.topology import topology

BATCH = 8


def pass_seconds(encoder, batch, repeats: int = 3) -> tuple[float, torch.Tensor]:
    """Median CPU seconds of forward + backward, and the embeddings."""
    cpu = []
    for _ in range(repeats + 1):
        encoder.zero_grad(set_to_none=True)
        c0 = time.process_time()
        emb = encoder(batch)
        emb.square().sum().backward()
        cpu.append(time.process_time() - c0)
    return float(np.median(cpu[1:])), emb.detach()


def run() -> dict:
    rng = np.random.default_rng(0)
    topos = {spec.name: topology(spec) for spec in FAMILIES}
    batcher = GraphBatcher(topos.values(), "cpu")
    per_family = {}
    with torch_threads(1):
        torch.manual_seed(0)
        encoder = build_encoder(repo_section("gmn", "train", "encoder"))
        groups = encoder.cpu_chunk_edges
        for name, topo in topos.items():
            batch = random_batch(batcher, name, topo.n_edges, BATCH, rng)
            encoder.cpu_chunk_edges = None
            base_s, base_emb = pass_seconds(encoder, batch)
            encoder.cpu_chunk_edges = groups
            ours_s, ours_emb = pass_seconds(encoder, batch)
            if not torch.allclose(base_emb, ours_emb, rtol=1e-5, atol=1e-6):
                raise AssertionError(f"gmn-groups: {name} embeddings differ between one group "
                                     f"and groups of {groups} edges")
            per_family[name] = {"baseline_cpu_s": base_s, "ours_cpu_s": ours_s,
                                "n_edges_per_graph": topo.n_edges}
    rate = lambda key: len(per_family) / sum(r[key] / BATCH for r in per_family.values())
    return {"name": "gmn-groups", "unit": "graphs/s (encoder forward + backward, CPU time, 1 thread)",
            "baseline": rate("baseline_cpu_s"), "ours": rate("ours_cpu_s"),
            "ratio": rate("ours_cpu_s") / rate("baseline_cpu_s"), "group_edges": groups,
            "batch": BATCH, "per_family": per_family}


if __name__ == "__main__":
    print(json.dumps(run()))
