"""Train a weight-space diffusion model on instance-weight shards, and sample from it.

Stage API (one model per dataset x representation x denoiser):

- ``train_diffusion(weights_paths, cfg, out_path, seed, ...)`` reads the
  ``results/lora/{dataset}/{repr}/{shard}.zarr`` weight shards (``weights`` [n, P],
  ``object_ids``, attrs ``layout``; :mod:`nfws.mlora.weight_shard`), keeps the training
  split, standardises every coordinate, trains an epsilon-prediction denoiser with AdamW
  and writes one ``.pt`` with the model, the normaliser, the layout and the loss curve. A
  sibling ``<out>.progress.pt`` checkpoint makes a killed job resume where it stopped.
- ``sample(model_path, n, seed)`` returns de-normalised weight vectors [n, P].
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from nfws.config_files import Section
from nfws.data.manifest import split_members
from nfws.device import choose_device
from nfws.mlora.ddpm import GaussianDiffusion, WeightNormaliser
from nfws.mlora.dit import TensorTokenDiT, layout_size
from nfws.mlora.lora_encoder import HierarchicalLoRADiT, lora_structure
from nfws.mlora.weight_shard import read_weight_shards
from nfws.checkpoint import Checkpoint, input_fingerprint
from nfws.store import config_hash, load_torch, save_torch

DENOISERS = ("auto", "dit", "lora_encoder")
@dataclass(frozen=True)
class DenoiserConfig(Section):
    """The ``diffusion.model`` section: noise schedule, sampler, denoiser sizes, training."""

    SECTION = "diffusion.model"
    timesteps: int
    beta_start: float
    beta_end: float
    sampling_steps: int
    eta: float
    hidden: int
    depth: int
    heads: int
    mlp_ratio: float
    rank_encoding: bool
    batch_size: int
    lr: float
    weight_decay: float
    steps: int
    checkpoint_every: int
    sample_batch: int
    device: str


def load_weight_shards(paths, manifest_path=None, split: str = "train"):
    """Stack the weight shards; keep objects of ``split`` when a manifest is given.

    Returns (weights float32 [n, P], object_ids [n], layout).
    """
    shard = read_weight_shards(paths)
    weights = np.asarray(shard.weights, dtype=np.float32)
    ids = np.asarray([str(i) for i in shard.object_ids])
    bad = ~np.isfinite(weights).all(axis=1)
    if bad.any():
        raise ValueError(f"{paths}: weights of objects {ids[bad][:5].tolist()} contain NaN or inf")
    if manifest_path is not None:
        keep = split_members(manifest_path, ids, split, "the weight shards")
        weights, ids = weights[keep], ids[keep]
    return weights, ids, shard.attrs["layout"]


def resolve_denoiser(denoiser: str, layout: list[dict]) -> str:
    """``auto`` → the layer encoder for layouts with LoRA factors, the tensor-token DiT else."""
    if denoiser not in DENOISERS:
        raise ValueError(f"diffusion denoiser must be one of {DENOISERS}, got {denoiser!r}")
    if denoiser != "auto":
        return denoiser
    try:
        lora_structure(layout)
        return "lora_encoder"
    except ValueError:
        return "dit"


def build_denoiser(denoiser: str, layout: list[dict], cfg: DenoiserConfig) -> torch.nn.Module:
    args = dict(layout=layout, hidden=cfg.hidden, depth=cfg.depth, heads=cfg.heads,
                mlp_ratio=cfg.mlp_ratio)
    if denoiser == "lora_encoder":
        return HierarchicalLoRADiT(**args, rank_encoding=cfg.rank_encoding)
    return TensorTokenDiT(**args)


def train_diffusion(weights_paths, cfg: dict, out_path, seed: int, manifest_path,
                    denoiser: str = "auto", split: str = "train") -> dict:
    """Train one denoiser on the ``split`` objects (per ``manifest_path``) of the shards;
    write ``out_path`` (.pt); return a summary dict. Instance shards hold every object of
    the dataset, so the manifest is required: the held-out objects are the reference set."""
    cfg = DenoiserConfig.from_dict(cfg)
    out_path = Path(out_path)
    device = choose_device(cfg.device)
    weights, ids, layout = load_weight_shards(weights_paths, manifest_path, split)
    denoiser = resolve_denoiser(denoiser, layout)
    x = torch.from_numpy(weights)
    normaliser = WeightNormaliser.fit(x)
    data = normaliser.normalise(x).to(device)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # parameter initialisation, without touching the caller's RNG
        model = build_denoiser(denoiser, layout, cfg).to(device)
    diffusion = GaussianDiffusion(cfg.timesteps, cfg.beta_start, cfg.beta_end)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            fused=True)
    gen = torch.Generator().manual_seed(seed)
    checkpoint = Checkpoint.beside(out_path, {
        "config_hash": config_hash(cfg.to_dict()), "denoiser": denoiser, "seed": seed, "ids": ids.tolist(),
        "inputs": input_fingerprint([weights_paths, manifest_path])})
    step, losses = 0, []
    state = checkpoint.load()
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        step, losses = int(state["step"]), state["losses"].tolist()

    batch = min(cfg.batch_size, len(data))
    start = time.perf_counter()
    model.train()
    with tqdm(total=cfg.steps, initial=step, desc=f"diffusion {out_path.parent.name}") as bar:
        while step < cfg.steps:
            idx = torch.randperm(len(data), generator=gen)[:batch].to(device)
            loss = diffusion.loss(model, data[idx], gen)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{out_path}: diffusion loss is {loss.item()} at step {step}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
            if step % cfg.checkpoint_every == 0 and step < cfg.steps:
                checkpoint.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                                 "generator": gen.get_state(), "step": step,
                                 "losses": torch.tensor(losses)})
    seconds = time.perf_counter() - start
    save_torch({"cfg": cfg.to_dict(), "denoiser": denoiser, "layout": layout,
                "model": {k: v.cpu() for k, v in model.state_dict().items()},
                "normaliser": normaliser.state_dict(), "losses": torch.tensor(losses),
                "object_ids": ids.tolist(), "seed": seed}, out_path)
    checkpoint.clear()
    return {"denoiser": denoiser, "n_train": int(len(data)), "n_params": layout_size(layout),
            "steps": step, "final_loss": float(np.mean(losses[-20:])), "seconds": seconds}


def load_diffusion(model_path, device: torch.device | None = None):
    """(model in eval mode, GaussianDiffusion, WeightNormaliser, cfg) from a trained .pt."""
    state = load_torch(model_path)
    cfg = DenoiserConfig.from_dict(state["cfg"], f"{model_path}: cfg")
    device = device or choose_device(cfg.device)
    model = build_denoiser(state["denoiser"], state["layout"], cfg)
    model.load_state_dict(state["model"])
    model.to(device).eval()
    diffusion = GaussianDiffusion(cfg.timesteps, cfg.beta_start, cfg.beta_end)
    return model, diffusion, WeightNormaliser.from_state_dict(state["normaliser"]), cfg


def sample(model_path, n: int, seed: int, sampler: str = "ddim", steps: int | None = None,
           device: torch.device | None = None) -> np.ndarray:
    """``n`` generated weight vectors [n, P] in the original (de-normalised) scale.

    sampler: ``ddim`` (``steps`` defaults to cfg sampling_steps, eta from cfg) or ``ddpm``
    (ancestral over all T steps). Seeded: the same seed gives the same samples.
    """
    if n < 1:
        raise ValueError(f"sample: n must be >= 1, got {n}")
    model, diffusion, normaliser, cfg = load_diffusion(model_path, device)
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    dim = normaliser.mean.numel()
    out = []
    for start in tqdm(range(0, n, cfg.sample_batch), desc="sampling"):
        shape = (min(cfg.sample_batch, n - start), dim)
        if sampler == "ddim":
            z = diffusion.ddim_sample(model, shape, steps or cfg.sampling_steps, gen,
                                      eta=cfg.eta, device=device)
        elif sampler == "ddpm":
            z = diffusion.ddpm_sample(model, shape, gen, device=device)
        else:
            raise ValueError(f"sample: sampler must be 'ddim' or 'ddpm', got {sampler!r}")
        out.append(normaliser.denormalise(z.cpu()))
    return torch.cat(out).numpy().astype(np.float32)
