"""Benchmark of the encoder training step: graphs per second per NeRF family.

One step = GMN forward/backward on a batch of parameter graphs of the real MLP, TRI and
HASH topologies (random edge values, collated by the shared-topology batcher) + nf2vec
decoder rendering of ``rays_per_nerf`` rays per NeRF + AdamW update. The teacher is left
out (it is the farm's renderer and is measured by its own benchmark).
Baseline: the paper's sizes (GMN hidden 128 x 4 blocks, d_embed 1024, decoder width 1024)
on a batch of 2 graphs, once (it is slow on CPU). Ours: the default CPU sizes below.
Both run single-threaded in the same process; CPU time is reported beside wall time
because the machine may be shared. ratio = ours graphs/s / baseline graphs/s (CPU time).
"""
from __future__ import annotations

import json
import time

import numpy as np
import torch

from nfws.bench._threads import torch_threads
from nfws.fields.spec import ArchSpec
from nfws.gmn.train import render_in_box
from nfws.graphs.dataset import GraphBatcher
from nfws.graphs.topology import topology
from nfws.gmn.models import GMNEncoder
from nfws.gmn.nf2vec import NF2VecDecoder

FAMILIES = (
    ArchSpec("MLP", "MLP"),
    ArchSpec("TRI", "TRI", activation="sine", triplane_res=32, triplane_channels=16),
    ArchSpec("HASH", "HASH", hash_levels=4, hash_log2_T=12, hash_features=2),
)
# ``encoder``: GMNEncoder options (the embedded config.yaml's and the paper's).
DEFAULT = {"encoder": {"hidden": 16, "layers": 3, "d_embed": 128, "value_norm": "group", "pool": "groups",
                       "layer_code": "role"},
           "width": 256, "rays": 128,
           "samples": 16, "batch": 8}
PAPER = {"encoder": {"hidden": 128, "layers": 4, "d_embed": 1024}, "width": 1024, "rays": 128,
         "samples": 16, "batch": 2}


def random_batch(batcher: GraphBatcher, arch: str, n_edges: int, n_graphs: int,
                 rng: np.random.Generator):
    """``n_graphs`` graphs of one topology with N(0, 0.1^2) edge values, collated."""
    return batcher.collate([arch] * n_graphs,
                           [rng.normal(0, 0.1, n_edges).astype(np.float32) for _ in range(n_graphs)],
                           [0] * n_graphs, [f"o{i}" for i in range(n_graphs)])


def step_times(sizes: dict, repeats: int, seed: int = 0, device="cpu",
               warm_up: int = 0) -> dict[str, dict[str, float]]:
    """Median CPU and wall seconds (CUDA work awaited) of one training step per family at
    ``sizes``, after ``warm_up`` untimed steps of each family."""
    device = torch.device(device)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    render_gen = torch.Generator(device=device).manual_seed(seed)
    topos = {spec.name: topology(spec) for spec in FAMILIES}
    batcher = GraphBatcher(topos.values(), device)
    encoder = GMNEncoder(**sizes["encoder"]).to(device)
    decoder = NF2VecDecoder(sizes["encoder"]["d_embed"], sizes["width"]).to(device)
    opt = torch.optim.AdamW([*encoder.parameters(), *decoder.parameters()], lr=1e-4)
    B, R = sizes["batch"], sizes["rays"]
    origins = torch.tensor([0.0, 0.0, 2.0]).expand(B, R, 3).to(device)
    dirs = torch.nn.functional.normalize(
        torch.randn(B, R, 3, generator=gen) * 0.2 + torch.tensor([0.0, 0.0, -1.0]), dim=-1).to(device)
    target = torch.rand(B, R, 3, generator=gen).to(device)
    out = {}
    for name, topo in topos.items():
        batch = random_batch(batcher, name, topo.n_edges, B, rng)
        cpu, wall = [], []
        for _ in range(warm_up + repeats):
            c0, w0 = time.process_time(), time.perf_counter()
            emb = encoder(batch)
            rgb, _ = render_in_box(lambda x: decoder(x, emb), origins, dirs, sizes["samples"], 0.7,
                                   render_gen)
            loss = torch.nn.functional.smooth_l1_loss(rgb, target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
        cpu, wall = cpu[warm_up:], wall[warm_up:]
        out[name] = {"cpu_s": float(np.median(cpu)), "wall_s": float(np.median(wall)),
                     "graphs_per_s_cpu": B / float(np.median(cpu)),
                     "graphs_per_s": B / float(np.median(wall)), "n_edges": topo.n_edges}
    return out


def run() -> dict:
    with torch_threads(1):
        ours = step_times(DEFAULT, repeats=3)
        base = step_times(PAPER, repeats=1)
    # an ALL epoch visits the three families equally often: harmonic mean of the rates
    rate = lambda res: len(res) / sum(1.0 / r["graphs_per_s_cpu"] for r in res.values())
    return {"name": "gmn", "unit": "graphs/s (encoder training step, CPU time, 1 thread)",
            "baseline": rate(base), "ours": rate(ours), "ratio": rate(ours) / rate(base),
            "baseline_sizes": PAPER, "ours_sizes": DEFAULT,
            "per_family": {"ours": ours, "baseline": base}}


if __name__ == "__main__":
    print(json.dumps(run()))
