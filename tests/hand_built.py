"""Test inputs built by hand, shared by the unit tests of several packages: parameter graphs
of small MLPs from the rules of docs/recipes.md, one NeRF's arrays and a targets store of
random images."""
import numpy as np
import torch
from torch_geometric.data import Data

from nfws.config_files import repo_section
from nfws.fields.stacks import make_stack
from nfws.graphs.vocab import EDGE_TYPE, NODE_TYPE
from nfws.store import write_zarr


def mlp_graph(weights, biases, object_id="obj", arch="toy"):
    """Parameter graph of an MLP, built by hand from the rules of docs/recipes.md.

    One node per neuron (input / neuron / output), one bias node per non-input layer;
    weight edges i -> o with (W[o, i], layer, weight, 0, 0, 0), bias edges from the layer's
    bias node with (b[o], layer, bias, 0, 0, 0).
    """
    sizes = [weights[0].shape[1]] + [w.shape[0] for w in weights]
    n_layers = len(sizes) - 1
    nodes, offsets = [], []
    for layer, n in enumerate(sizes):
        kind = "input" if layer == 0 else "output" if layer == n_layers else "neuron"
        offsets.append(len(nodes))
        nodes += [(layer, i, NODE_TYPE[kind]) for i in range(n)]
    bias_node = {}
    for layer in range(1, n_layers + 1):
        bias_node[layer] = len(nodes)
        nodes.append((layer, 0, NODE_TYPE["bias"]))
    src, dst, attr = [], [], []
    for layer, (w, b) in enumerate(zip(weights, biases)):
        for o in range(w.shape[0]):
            for i in range(w.shape[1]):
                src.append(offsets[layer] + i)
                dst.append(offsets[layer + 1] + o)
                attr.append((float(w[o, i]), layer, EDGE_TYPE["weight"], 0.0, 0.0, 0.0))
            src.append(bias_node[layer + 1])
            dst.append(offsets[layer + 1] + o)
            attr.append((float(b[o]), layer, EDGE_TYPE["bias"], 0.0, 0.0, 0.0))
    return Data(x=torch.tensor(nodes, dtype=torch.long), edge_index=torch.tensor([src, dst]),
                edge_attr=torch.tensor(attr, dtype=torch.float32), object_id=object_id, arch=arch)


def random_mlp(gen, sizes):
    ws = [torch.randn(sizes[i + 1], sizes[i], generator=gen) for i in range(len(sizes) - 1)]
    bs = [torch.randn(sizes[i + 1], generator=gen) for i in range(len(sizes) - 1)]
    return ws, bs


def one_nerf(spec, seed=0):
    stack = make_stack(spec, 1, torch.Generator().manual_seed(seed))
    return {k: v[0] for k, v in stack.state_arrays().items()}


def random_image_targets(path, n: int, size: int, splits=None, labels=None, prefix="o"):
    """A Track B image-targets store of ``n`` random ``size`` x ``size`` RGB images (ids
    ``{prefix}0``, …; labels 0 unless given; ``splits`` only when given). Returns the images."""
    imgs = np.random.default_rng(0).integers(0, 256, (n, size, size, 3)).astype(np.uint8)
    arrays = {"images": imgs, "object_ids": np.array([f"{prefix}{i}" for i in range(n)]),
              "labels": np.zeros(n, np.int64) if labels is None else labels}
    if splits is not None:
        arrays["splits"] = splits
    write_zarr(path, arrays, attrs={"kind": "image"})
    return imgs


def tiny_lora_fit(**overrides) -> dict:
    """config.yaml's ``lora.fit`` completed as ``nfws.mlora.config.fit_config`` completes it,
    at test size (a few steps and points, rank 2, an 8-wide MLP), with ``overrides``."""
    return {**repo_section("lora", "fit"), "steps": 12, "points": 24, "lr_start": 1e-2,
            "lr_end": 1e-5, "log_every": 4, "checkpoint_every": 100, "base_latent": "mean",
            "mlp_template_init": False, "rank": 2, "kappa": 6.0, "mask_seed": 3,
            "mlp_hidden": 8, "omega0": 6.0, "mlora_init": "partition", "mlora_init_std": 0.1,
            "mc_resolution": 12, "mc_bound": 0.6, "n_chamfer": 200, "eval_chunk": 512,
            "max_weight_growth": 20.0, "on_failure": "fail", **overrides}
