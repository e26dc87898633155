"""Feature extractors for the distributional generation metrics (FD, MMD-G, MMD-P).

The paper uses CLIP (2D) and PointNet++ (3D); their weights cannot be fetched offline, so
by default the pipeline trains its own extractor once per dataset on the ground truth of
the training split, with a class-label objective (cross-entropy on the targets store's
``labels``: hair colour for faces, object class for 3D shapes) and uses the penultimate
layer as the feature:

- ``image_cnn``: 3 stride-2 conv layers + global average pool + linear (images are resized
  to ``input_res`` and scaled to [-1, 1]);
- ``pointnet``: shared per-point MLP 3-64-128-256, max pool, linear (PointNet, Qi et al.
  2017, without the transform nets).

Supported checkpoints (``load_extractor``):
1. our own ``.pt`` written by ``train_feature_extractor`` (read with weights_only=True);
2. a TorchScript archive (``torch.jit.save``), e.g. an exported CLIP image tower or a
   PointNet++: images are fed as float [B, 3, ts_input_res, ts_input_res], RGB in [0, 1]
   normalised by ``ts_mean`` / ``ts_std`` (CLIP's by default); point clouds as float
   [B, n_points, 3]. The output (or its first element if a tuple) is flattened to [B, d].
Nothing else (pickled modules, open_clip / torchvision model objects) is loaded.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from nfws.device import choose_device
from nfws.fit.diffusion import checked_section
from nfws.store import load_torch, read_parquet, read_zarr, save_torch

# The default CPU run's ``feature_extractor`` config section; ``checkpoint`` names an
# external extractor (TorchScript) to use instead of training one; ts_* describe its input.
EXTRACTOR_DEFAULTS = {
    "checkpoint": None, "feat_dim": 64, "epochs": 30, "batch_size": 32, "lr": 1e-3,
    "input_res": 32, "n_points": 512, "device": "auto",
    "ts_input_res": 224, "ts_mean": [0.48145466, 0.4578275, 0.40821073],
    "ts_std": [0.26862954, 0.26130258, 0.27577711],
}


def extractor_config(cfg: dict) -> dict:
    """Check the ``feature_extractor`` config section: every key of ``EXTRACTOR_DEFAULTS``."""
    return checked_section(cfg, EXTRACTOR_DEFAULTS, "feature_extractor")


class ImageCNN(nn.Module):
    def __init__(self, n_classes: int, feat_dim: int):
        super().__init__()
        chans = [3, 32, 64, 128]
        layers = []
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GroupNorm(8, c_out), nn.ReLU()]
        self.conv = nn.Sequential(*layers)
        self.embed = nn.Linear(chans[-1], feat_dim)
        self.head = nn.Linear(feat_dim, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.conv(x).mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.features(x)))


class PointNet(nn.Module):
    def __init__(self, n_classes: int, feat_dim: int):
        super().__init__()
        self.point_mlp = nn.Sequential(nn.Linear(3, 64), nn.ReLU(), nn.Linear(64, 128), nn.ReLU(),
                                       nn.Linear(128, 256))
        self.embed = nn.Linear(256, feat_dim)
        self.head = nn.Linear(feat_dim, n_classes)

    def features(self, points: torch.Tensor) -> torch.Tensor:
        return self.embed(self.point_mlp(points).max(dim=1).values)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.features(points)))


ARCHS = {"image_cnn": ImageCNN, "pointnet": PointNet}


def prepare_images(images: np.ndarray, res: int) -> torch.Tensor:
    """uint8 [n, H, W, 3] -> float [n, 3, res, res] in [0, 1]."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 [n, H, W, 3], got {images.dtype} {images.shape}")
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    if x.shape[-1] != res or x.shape[-2] != res:
        x = F.interpolate(x, size=(res, res), mode="bilinear", antialias=True, align_corners=False)
    return x


def subsample_points(points: np.ndarray, n: int, generator: torch.Generator) -> torch.Tensor:
    """float [c, n, 3]: n points per cloud drawn without replacement (with it if fewer)."""
    pts = torch.as_tensor(np.asarray(points), dtype=torch.float32)
    if pts.ndim != 3 or pts.shape[-1] != 3:
        raise ValueError(f"point clouds must be [n, M, 3], got {tuple(pts.shape)}")
    m = pts.shape[1]
    if m >= n:
        idx = torch.stack([torch.randperm(m, generator=generator)[:n] for _ in range(len(pts))])
    else:
        idx = torch.randint(0, m, (len(pts), n), generator=generator)
    return torch.gather(pts, 1, idx.unsqueeze(-1).expand(-1, -1, 3))


class Extractor:
    """A loaded extractor: ``features(data) -> float64 [n, d]`` and a ``name`` for tables."""

    def __init__(self, module, modality: str, name: str, prepare, device):
        self.module, self.modality, self.name = module, modality, name
        self._prepare, self.device = prepare, device

    @torch.no_grad()
    def features(self, data: np.ndarray, batch: int = 128) -> np.ndarray:
        x = self._prepare(data)
        out = []
        for s in range(0, len(x), batch):
            f = self.module(x[s:s + batch].to(self.device))
            f = f[0] if isinstance(f, (tuple, list)) else f
            out.append(f.reshape(f.shape[0], -1).double().cpu())
        feats = torch.cat(out).numpy()
        if not np.isfinite(feats).all():
            raise FloatingPointError(f"feature extractor {self.name} produced NaN/inf")
        return feats


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any("/code/" in n or n.startswith("code/") for n in zf.namelist())


def load_extractor(path, cfg: dict, modality: str | None = None) -> Extractor:
    """An ``Extractor`` from our own checkpoint or a TorchScript archive (module doc).

    ``modality`` ('image' | 'occupancy') is required for TorchScript files, whose input
    format cannot be read from the file; our checkpoints record it.
    """
    cfg = extractor_config(cfg)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: feature extractor checkpoint missing")
    device = choose_device(cfg["device"])
    point_gen_seed = 0  # fixed subsample of each cloud, so features are deterministic
    if _is_torchscript(path):
        if modality not in ("image", "occupancy"):
            raise ValueError(f"{path}: TorchScript extractor needs modality 'image' or 'occupancy'")
        module = torch.jit.load(str(path), map_location=device).eval()
        if modality == "image":
            mean = torch.tensor(cfg["ts_mean"]).view(1, 3, 1, 1)
            std = torch.tensor(cfg["ts_std"]).view(1, 3, 1, 1)
            prepare = lambda d: (prepare_images(d, cfg["ts_input_res"]) - mean) / std  # noqa: E731
        else:
            prepare = lambda d: subsample_points(  # noqa: E731
                d, cfg["n_points"], torch.Generator().manual_seed(point_gen_seed))
        return Extractor(module, modality, f"TorchScript {path.name}", prepare, device)
    state = load_torch(path)
    if not isinstance(state, dict) or state.get("arch") not in ARCHS:
        raise ValueError(f"{path}: not an nfws extractor checkpoint (expected key 'arch' in "
                         f"{sorted(ARCHS)}) nor a TorchScript archive")
    module = ARCHS[state["arch"]](state["n_classes"], state["feat_dim"])
    module.load_state_dict(state["state_dict"])
    module = module.to(device).eval()
    if state["arch"] == "image_cnn":
        res = state["input_res"]
        prepare = lambda d: prepare_images(d, res) * 2 - 1  # noqa: E731
    else:
        n_pts = state["n_points"]
        prepare = lambda d: subsample_points(  # noqa: E731
            d, n_pts, torch.Generator().manual_seed(point_gen_seed))
    return Extractor(module.features, state["modality"], state["description"], prepare, device)


def train_feature_extractor(targets_path, manifest_path, cfg: dict, out_path, seed: int,
                            split: str = "train") -> dict:
    """Train ``image_cnn`` / ``pointnet`` on the ``split`` ground truth of a targets store.

    Reads ``targets.zarr`` (images or surface points, labels, object ids; attrs kind) and
    the manifest; writes ``out_path`` (.pt). Returns a summary with training accuracy.
    """
    cfg = extractor_config(cfg)
    arrays, attrs = read_zarr(targets_path)
    modality = attrs.get("kind")
    key = {"image": "images", "occupancy": "surface"}.get(modality)
    if key is None or key not in arrays:
        raise ValueError(f"{targets_path}: need attrs kind 'image' (images) or 'occupancy' "
                         f"(surface); got kind {modality!r}")
    manifest = read_parquet(manifest_path, ["object_id", "split"])
    wanted = set(manifest.loc[manifest["split"] == split, "object_id"].astype(str))
    keep = np.array([str(i) in wanted for i in arrays["object_ids"]])
    classes, labels = np.unique(arrays["labels"][keep], return_inverse=True)
    if keep.sum() < 2 or len(classes) < 2:
        raise ValueError(f"{targets_path}: split {split!r} has {int(keep.sum())} objects in "
                         f"{len(classes)} classes; a class-label extractor needs >= 2 classes")
    data = arrays[key][keep]
    device = choose_device(cfg["device"])
    gen = torch.Generator().manual_seed(seed)
    arch = "image_cnn" if modality == "image" else "pointnet"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ARCHS[arch](len(classes), cfg["feat_dim"]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    x_all = prepare_images(data, cfg["input_res"]) * 2 - 1 if arch == "image_cnn" else None
    y_all = torch.from_numpy(labels).long()
    correct = 0
    for _ in tqdm(range(cfg["epochs"]), desc=f"feature extractor {arch}"):
        order = torch.randperm(len(y_all), generator=gen)
        correct = 0
        for s in range(0, len(order), cfg["batch_size"]):
            idx = order[s:s + cfg["batch_size"]]
            if arch == "image_cnn":
                x = x_all[idx]
                flip = torch.rand(len(idx), generator=gen) < 0.5
                x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            else:
                x = subsample_points(data[idx.numpy()], cfg["n_points"], gen)
            logits = model(x.to(device))
            loss = F.cross_entropy(logits, y_all[idx].to(device))
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{out_path}: extractor loss is {loss.item()}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            correct += (logits.argmax(1).cpu() == y_all[idx]).sum().item()
    train_acc = correct / len(y_all)
    description = (f"{'ImageCNN' if arch == 'image_cnn' else 'PointNet'} trained on "
                   f"{Path(targets_path).parent.name} {split} labels ({len(classes)} classes)")
    save_torch({"arch": arch, "modality": modality, "n_classes": int(len(classes)),
                "feat_dim": int(cfg["feat_dim"]), "input_res": int(cfg["input_res"]),
                "n_points": int(cfg["n_points"]), "class_values": torch.from_numpy(classes),
                "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                "train_accuracy": float(train_acc), "description": description}, out_path)
    return {"arch": arch, "n_train": int(len(y_all)), "n_classes": int(len(classes)),
            "train_accuracy": float(train_acc)}
