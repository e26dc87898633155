"""Feature extractors for the distributional generation metrics (FD, MMD-G, MMD-P).

``train_feature_extractor`` trains one per dataset on the training split's ground truth
(``image_cnn`` for images, ``pointnet`` for point clouds) and writes a ``.pt``;
``prepare_feature_extractor`` instead writes a record naming an external file
(TorchScript or open_clip). ``load_extractor`` reads either and returns an
:class:`Extractor` whose ``features`` maps images or point clouds to float64 [n, d].
Nothing else (pickled modules, torchvision model objects) is loaded.
Design and formats: docs/trackb.md, "Feature extractors for the generation metrics".
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from nfws.config_files import Section
from nfws.data.targets import read_target_store, split_ground_truth
from nfws.device import choose_device
from nfws.store import load_torch, save_torch

OBJECTIVES = ("auto", "labels", "autoencoder")


@dataclass(frozen=True)
class ExtractorConfig(Section):
    """The ``diffusion.feature_extractor`` section: the extractor trained here (sizes,
    schedule, objective), or an external one in ``checkpoint`` (TorchScript, or an
    ``open_clip_model`` file) with its image input ``ts_*``."""

    SECTION = "diffusion.feature_extractor"
    checkpoint: str | None
    open_clip_model: str | None
    objective: str
    feat_dim: int
    epochs: int
    batch_size: int
    lr: float
    input_res: int
    n_points: int
    device: str
    ts_input_res: int
    ts_mean: tuple
    ts_std: tuple

    def check(self, section: str) -> None:
        if self.objective not in OBJECTIVES:
            self.bad(section, "objective", f"must be one of {OBJECTIVES}")


class ImageCNN(nn.Module):
    """Image encoder; a class head only when trained on labels (n_classes > 0)."""

    def __init__(self, n_classes: int, feat_dim: int):
        super().__init__()
        chans = [3, 32, 64, 128]
        layers = []
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GroupNorm(8, c_out), nn.ReLU()]
        self.conv = nn.Sequential(*layers)
        self.embed = nn.Linear(chans[-1], feat_dim)
        self.head = nn.Linear(feat_dim, n_classes) if n_classes else None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.conv(x).mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.features(x)))


class PointNet(nn.Module):
    """Point-cloud encoder; a class head only when trained on labels (n_classes > 0)."""

    def __init__(self, n_classes: int, feat_dim: int):
        super().__init__()
        self.point_mlp = nn.Sequential(nn.Linear(3, 64), nn.ReLU(), nn.Linear(64, 128), nn.ReLU(),
                                       nn.Linear(128, 256))
        self.embed = nn.Linear(256, feat_dim)
        self.head = nn.Linear(feat_dim, n_classes) if n_classes else None

    def features(self, points: torch.Tensor) -> torch.Tensor:
        return self.embed(self.point_mlp(points).max(dim=1).values)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.features(points)))


class ImageDecoder(nn.Module):
    """Feature → image [B, 3, res, res] by three stride-2 transposed convolutions."""

    def __init__(self, feat_dim: int, res: int):
        super().__init__()
        if res % 8:
            raise ValueError(f"config feature_extractor.input_res must be a multiple of 8 for "
                             f"the autoencoder objective, got {res}")
        self.side = res // 8
        self.lift = nn.Linear(feat_dim, 128 * self.side**2)
        self.up = nn.Sequential(nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.ReLU(),
                                nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
                                nn.ConvTranspose2d(32, 3, 4, 2, 1))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.up(self.lift(F.relu(f)).view(len(f), 128, self.side, self.side))


class PointDecoder(nn.Module):
    """Feature → point cloud [B, n_points, 3] by an MLP (Achlioptas et al. 2018)."""

    def __init__(self, feat_dim: int, n_points: int):
        super().__init__()
        self.n_points = n_points
        self.mlp = nn.Sequential(nn.Linear(feat_dim, 256), nn.ReLU(), nn.Linear(256, n_points * 3))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.mlp(F.relu(f)).view(len(f), self.n_points, 3)


ARCHS = {"image_cnn": ImageCNN, "pointnet": PointNet}


def batched_chamfer(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the squared-distance Chamfer distance of clouds [B, M, 3]."""
    d = torch.cdist(a, b).square()
    return (d.min(2).values.mean(1) + d.min(1).values.mean(1)).mean()


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


POINT_SUBSAMPLE_SEED = 0  # fixed subsample of each cloud, so features are deterministic


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any("/code/" in n or n.startswith("code/") for n in zf.namelist())


def _external_prepare(cfg: ExtractorConfig, modality: str):
    """Input preparation of external extractors (CLIP-style images, subsampled clouds)."""
    if modality == "image":
        mean = torch.tensor(cfg.ts_mean).view(1, 3, 1, 1)
        std = torch.tensor(cfg.ts_std).view(1, 3, 1, 1)
        return lambda d: (prepare_images(d, cfg.ts_input_res) - mean) / std
    return lambda d: subsample_points(d, cfg.n_points,
                                      torch.Generator().manual_seed(POINT_SUBSAMPLE_SEED))


def _open_clip_extractor(path: Path, cfg: ExtractorConfig, modality: str, device) -> Extractor:
    name = cfg.open_clip_model
    if modality != "image":
        raise ValueError(f"{path}: an open_clip model embeds images, but the data are "
                         f"{modality!r} (config feature_extractor.open_clip_model={name!r})")
    try:
        import open_clip
    except ImportError as err:
        raise ImportError(
            f"config feature_extractor.open_clip_model is {name!r} but the open_clip package "
            f"is not installed, so {path} cannot be loaded; install open_clip_torch, export "
            "the image tower to TorchScript, or set feature_extractor.checkpoint to null") from err
    model = open_clip.create_model(name, pretrained=str(path), device=device).eval()
    return Extractor(model.encode_image, modality, f"open_clip {name} ({path.name})",
                     _external_prepare(cfg, modality), device)


def load_external_extractor(path, cfg: dict, modality: str) -> Extractor:
    """An extractor from a TorchScript archive or, with ``open_clip_model``, an open_clip
    model file; ``modality`` ('image' | 'occupancy') fixes its input format."""
    cfg = ExtractorConfig.from_dict(cfg)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: feature extractor file missing "
                                "(config feature_extractor.checkpoint)")
    if modality not in ("image", "occupancy"):
        raise ValueError(f"{path}: external extractor needs modality 'image' or 'occupancy', "
                         f"got {modality!r}")
    device = choose_device(cfg.device)
    if _is_torchscript(path):
        module = torch.jit.load(str(path), map_location=device).eval()
        return Extractor(module, modality, f"TorchScript {path.name}",
                         _external_prepare(cfg, modality), device)
    if cfg.open_clip_model:
        return _open_clip_extractor(path, cfg, modality, device)
    raise ValueError(f"{path}: not a TorchScript archive; for an open_clip model file set "
                     "config feature_extractor.open_clip_model to its architecture name")


def load_extractor(path, cfg: dict, modality: str | None = None) -> Extractor:
    """An ``Extractor`` from our checkpoint, a record naming an external one, or a
    TorchScript archive (``modality`` required for the latter; ours record it)."""
    cfg = ExtractorConfig.from_dict(cfg)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: feature extractor checkpoint missing")
    if _is_torchscript(path):
        return load_external_extractor(path, cfg, modality)
    state = load_torch(path)
    if isinstance(state, dict) and state.get("arch") == "external":
        return load_external_extractor(state["path"], cfg, state["modality"])
    if not isinstance(state, dict) or state.get("arch") not in ARCHS:
        raise ValueError(f"{path}: not an nfws extractor checkpoint (expected key 'arch' in "
                         f"{sorted(ARCHS)} or 'external') nor a TorchScript archive")
    device = choose_device(cfg.device)
    module = ARCHS[state["arch"]](state["n_classes"], state["feat_dim"])
    module.load_state_dict(state["state_dict"])
    module = module.to(device).eval()
    if state["arch"] == "image_cnn":
        res = state["input_res"]
        prepare = lambda d: prepare_images(d, res) * 2 - 1  # noqa: E731
    else:
        n_pts = state["n_points"]
        prepare = lambda d: subsample_points(  # noqa: E731
            d, n_pts, torch.Generator().manual_seed(POINT_SUBSAMPLE_SEED))
    return Extractor(module.features, state["modality"], state["description"], prepare, device)


def train_feature_extractor(targets_path, manifest_path, cfg: dict, out_path, seed: int,
                            split: str = "train") -> dict:
    """Train ``image_cnn`` / ``pointnet`` on the ``split`` ground truth of a targets store,
    with the configured ``objective`` (module doc).

    Reads ``targets.zarr`` (images or surface points, labels, object ids; attrs kind) and
    the manifest; writes ``out_path`` (.pt). Returns a summary with the training
    accuracy (labels) or the final reconstruction loss (autoencoder).
    """
    cfg = ExtractorConfig.from_dict(cfg)
    modality, data, raw_labels = split_ground_truth(targets_path, manifest_path, split)
    classes, labels = np.unique(raw_labels, return_inverse=True)
    objective = cfg.objective
    if objective == "auto":
        objective = "labels" if len(classes) >= 2 else "autoencoder"
    if objective == "labels" and len(classes) < 2:
        raise ValueError(f"{targets_path}: split {split!r} has {len(data)} objects in "
                         f"{len(classes)} classes; a class-label extractor needs >= 2 classes "
                         "(config feature_extractor.objective: autoencoder or auto)")
    device = choose_device(cfg.device)
    gen = torch.Generator().manual_seed(seed)
    arch = "image_cnn" if modality == "image" else "pointnet"
    n_out = len(classes) if objective == "labels" else 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ARCHS[arch](n_out, cfg.feat_dim).to(device)
        decoder = None
        if objective == "autoencoder":
            decoder = (ImageDecoder(cfg.feat_dim, cfg.input_res) if arch == "image_cnn"
                       else PointDecoder(cfg.feat_dim, cfg.n_points)).to(device)
    params = list(model.parameters()) + (list(decoder.parameters()) if decoder else [])
    opt = torch.optim.Adam(params, lr=cfg.lr)
    x_all = prepare_images(data, cfg.input_res) * 2 - 1 if arch == "image_cnn" else None
    y_all = torch.from_numpy(labels).long()
    correct, loss_sum = 0, 0.0
    for _ in tqdm(range(cfg.epochs), desc=f"feature extractor {arch} ({objective})"):
        order = torch.randperm(len(y_all), generator=gen)
        correct, loss_sum = 0, 0.0
        for s in range(0, len(order), cfg.batch_size):
            idx = order[s:s + cfg.batch_size]
            if arch == "image_cnn":
                x = x_all[idx]
                flip = torch.rand(len(idx), generator=gen) < 0.5
                x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            else:
                x = subsample_points(data[idx.numpy()], cfg.n_points, gen)
            x = x.to(device)
            if objective == "labels":
                logits = model(x)
                loss = F.cross_entropy(logits, y_all[idx].to(device))
                correct += (logits.argmax(1).cpu() == y_all[idx]).sum().item()
            elif arch == "image_cnn":
                loss = F.mse_loss(decoder(model.features(x)), x)
            else:
                loss = batched_chamfer(decoder(model.features(x)), x)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{out_path}: extractor loss is {loss.item()}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
    name = "ImageCNN" if arch == "image_cnn" else "PointNet"
    what = (f"labels ({len(classes)} classes)" if objective == "labels"
            else "as an autoencoder")
    description = f"{name} trained on {Path(targets_path).parent.name} {split} {what}"
    summary = {"arch": arch, "objective": objective, "n_train": int(len(y_all)),
               "n_classes": int(len(classes)), "final_loss": loss_sum / len(y_all)}
    if objective == "labels":
        summary["train_accuracy"] = correct / len(y_all)
    save_torch({"arch": arch, "modality": modality, "n_classes": n_out, "objective": objective,
                "feat_dim": int(cfg.feat_dim), "input_res": int(cfg.input_res),
                "n_points": int(cfg.n_points), "class_values": torch.from_numpy(classes),
                "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                "summary": summary, "description": description}, out_path)
    return summary


def prepare_feature_extractor(targets_path, manifest_path, cfg: dict, out_path,
                              seed: int) -> dict:
    """The extractor of one dataset: with config ``checkpoint`` set, check that file loads
    for the targets' modality and write a record naming it to ``out_path``; otherwise
    train ours (``train_feature_extractor``). ``load_extractor(out_path)`` reads both."""
    cfg = ExtractorConfig.from_dict(cfg)
    if cfg.checkpoint is None:
        return train_feature_extractor(targets_path, manifest_path, cfg, out_path, seed)
    modality = read_target_store(targets_path, with_arrays=False).kind
    external = Path(cfg.checkpoint).resolve()
    if not external.exists():
        raise FileNotFoundError(f"config feature_extractor.checkpoint: {external} does not exist")
    extractor = load_external_extractor(external, cfg, modality)
    save_torch({"arch": "external", "path": str(external), "modality": modality,
                "description": extractor.name}, out_path)
    return {"arch": "external", "name": extractor.name}
