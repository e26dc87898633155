"""Training the NeRF encoder with the nf2vec decoder (stage ``train_encoder``).

The loop is independent of what the encoder reads: an :class:`EncoderInputs` pairs a
per-item table (object_id, arch, split, class_index) with a function that turns a list of
item indices into one encoder input (a PyG batch of parameter graphs for the GMN, a dict
of stacked parameter tensors for the Table-5 baselines). Targets come from a *teacher*:
``teacher(keys, origins [B, R, 3], dirs [B, R, 3]) -> (rgb [B, R, 3], alpha [B, R])`` that
renders the input NeRFs themselves, keys being (arch, object_id). :func:`field_teacher`
builds one from any batched field, :func:`shard_teacher` from the NeRF shards themselves;
both render with the shared CPU/GPU renderer ``nfws.render.volrend.render_rays`` (the
decoder too), stratified in the box [-bbox, bbox]^3, over a black background.

Determinism: batches and rays of epoch ``e`` come from generators seeded by (seed, e), so
a run resumed from an epoch checkpoint continues exactly as an uninterrupted one.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import Batch
from tqdm import tqdm

from nfws.data.cameras import pixel_rays
from nfws.data.views import open_views
from nfws.device import pick_device
from nfws.fields.shard import read_nerf_shard
from nfws.fields.spec import ArchSpec
from nfws.fields.stacks import FieldStack
from nfws.batches import paired_batches, shuffled_batches
from nfws.gmn.baselines import NF2VecMLPEncoder, TriplaneTransformer
from nfws.gmn.models import GMNEncoder
from nfws.gmn.losses import SigLIP, check_variant, rendering_loss, uses_contrast, uses_rendering
from nfws.gmn.nf2vec import NF2VecDecoder
from nfws.render.volrend import render_rays
from nfws.checkpoint import Checkpoint, input_fingerprint
from nfws.config_files import Section
from nfws.store import config_hash, save_torch, write_json

META_COLUMNS = ("object_id", "arch", "split", "class_index")
ENCODER_KINDS = ("gmn", "nf2vec_mlp", "triplane_transformer")
Teacher = Callable[[list, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


# ----- what the encoder reads ---------------------------------------------------------
@dataclass
class EncoderInputs:
    """Items (one NeRF each) and a batcher: ``batch(indices)`` -> one encoder input."""

    meta: pd.DataFrame
    batch: Callable[[Sequence[int]], object]

    def __post_init__(self):
        missing = [c for c in META_COLUMNS if c not in self.meta.columns]
        if missing:
            raise ValueError(f"encoder inputs: meta table lacks columns {missing}")
        self.meta = self.meta.reset_index(drop=True)


def _join_manifest(items: pd.DataFrame, manifest: pd.DataFrame, what: str) -> pd.DataFrame:
    info = manifest[["object_id", "split", "class_index"]].drop_duplicates("object_id")
    meta = items.merge(info, on="object_id", how="left", validate="many_to_one")
    unknown = meta.loc[meta["split"].isna(), "object_id"].tolist()
    if unknown:
        raise ValueError(f"{what}: objects missing from the manifest: {unknown[:5]}")
    meta["class_index"] = meta["class_index"].astype(int)
    return meta[list(META_COLUMNS)]


def graph_inputs(graphs: Sequence, manifest: pd.DataFrame) -> EncoderInputs:
    """Parameter graphs (PyG Data with ``object_id`` and ``arch``) batched with PyG."""
    items = pd.DataFrame({"object_id": [str(g.object_id) for g in graphs],
                          "arch": [str(g.arch) for g in graphs]})
    meta = _join_manifest(items, manifest, "parameter graphs")
    return EncoderInputs(meta, lambda idx: Batch.from_data_list([graphs[i] for i in idx]))


def dataset_inputs(dataset) -> EncoderInputs:
    """A ``nfws.graphs.dataset.GraphDataset`` (graph shards + manifest) with its fast batcher."""
    return EncoderInputs(dataset.records[list(META_COLUMNS)], dataset.batch)


def param_inputs(shard_paths: Sequence, manifest: pd.DataFrame) -> EncoderInputs:
    """NeRF shards (``results/nerfs/{arch}/{shard}.zarr``) as dicts of stacked parameters."""
    stacks: dict[str, list[np.ndarray]] = {}
    items = []
    for path in shard_paths:
        shard = read_nerf_shard(path, arrays=())
        if stacks and set(stacks) != set(shard.params):
            raise ValueError(f"{path}: parameters {sorted(shard.params)} differ from earlier "
                             f"shards {sorted(stacks)}")
        for name, value in shard.params.items():
            stacks.setdefault(name, []).append(value.astype(np.float32))
        items += [(o, shard.spec.name) for o in shard.object_ids]
    if not items:
        raise ValueError("param_inputs: no shard given")
    params = {k: torch.from_numpy(np.concatenate(v)) for k, v in stacks.items()}
    meta = _join_manifest(pd.DataFrame(items, columns=["object_id", "arch"]), manifest, "NeRF shards")
    return EncoderInputs(meta, lambda idx: {k: v[list(idx)] for k, v in params.items()})


def to_device(inputs, device):
    if isinstance(inputs, dict):
        return {k: v.to(device) for k, v in inputs.items()}
    return inputs.to(device)


# ----- rays and teachers ------------------------------------------------------------
class ViewRays:
    """Random pixel rays of each object's training views (the pixels its NeRF was fit on)."""

    def __init__(self, c2w: np.ndarray, intrinsics: np.ndarray, object_ids: Sequence[str],
                 height: int, width: int):
        self.c2w = torch.as_tensor(np.asarray(c2w), dtype=torch.float32)
        self.intrinsics = torch.as_tensor(np.asarray(intrinsics), dtype=torch.float32)
        self.row = {str(o): i for i, o in enumerate(object_ids)}
        self.height, self.width = int(height), int(width)

    @classmethod
    def from_zarr(cls, path) -> "ViewRays":
        store = open_views(path)
        _, _, height, width, _ = store.images.shape
        return cls(store.c2w[...], store.intrinsics[...], store.object_ids, height, width)

    def sample(self, object_ids: Sequence[str], n_rays: int, generator: torch.Generator):
        missing = [o for o in object_ids if o not in self.row]
        if missing:
            raise KeyError(f"views store has no views of objects {missing[:5]}")
        rows = torch.tensor([self.row[o] for o in object_ids])
        B, V = len(rows), self.c2w.shape[1]
        view = torch.randint(V, (B, n_rays), generator=generator)
        col = torch.randint(self.width, (B, n_rays), generator=generator)
        line = torch.randint(self.height, (B, n_rays), generator=generator)
        uv = torch.stack([col, line], -1).float() + 0.5
        c2w = self.c2w[rows[:, None], view]
        intr = self.intrinsics[rows[:, None], view]
        return pixel_rays(c2w, intr, uv)


def render_in_box(field, origins, dirs, n_samples: int, bbox: float,
                  generator: torch.Generator | None = None, boxes: torch.Tensor | None = None):
    """rgb [B, R, 3] over black and opacity [B, R] of ``field`` inside [-bbox, bbox]^3, or
    inside each field's own sampling box ``boxes`` [B, 2, 3] when given."""
    if boxes is None:
        box = torch.tensor([[-bbox] * 3, [bbox] * 3], dtype=origins.dtype, device=origins.device)
        boxes = box.expand(origins.shape[0], 2, 3)
    jitter = None if generator is None else torch.rand(
        *origins.shape[:2], n_samples, generator=generator, device=generator.device)
    out = render_rays(field, origins, dirs, boxes, n_samples, origins.new_zeros(3), jitter)
    return out.rgb, out.opacity


def field_teacher(load_field: Callable[[list], Callable], n_samples: int, bbox: float = 0.7) -> Teacher:
    """A teacher from ``load_field(keys) -> field`` (points [B, N, 3] -> (rgb, sigma)),
    rendered at bin centres (deterministic targets)."""
    def teacher(keys, origins, dirs):
        return render_in_box(load_field(keys), origins, dirs, n_samples, bbox)
    return teacher


def shard_teacher(nerf_shards: Sequence, n_samples: int, device=None) -> Teacher:
    """The input NeRFs as teacher: every NeRF of the given shards, keyed by (arch, object_id).

    A batch may mix architectures; each architecture's NeRFs are rendered as one stack and
    the results put back in batch order. Each NeRF is rendered inside the sampling box it
    was trained in (``sample_box`` of its shard): outside it the field was never fitted.
    """
    device = pick_device(device)
    stores: dict[str, tuple[ArchSpec, dict[str, np.ndarray], dict[str, int]]] = {}
    for path in nerf_shards:
        shard = read_nerf_shard(path, arrays=("sample_box",))
        spec, ids = shard.spec, shard.object_ids
        arrays = {**shard.params, "sample_box": shard.sample_box}
        if spec.name in stores:
            old_spec, old_arrays, old_rows = stores[spec.name]
            offset = len(old_rows)
            arrays = {k: np.concatenate([old_arrays[k], v]) for k, v in arrays.items()}
            rows = {**old_rows, **{o: offset + i for i, o in enumerate(ids)}}
        else:
            rows = {o: i for i, o in enumerate(ids)}
        stores[spec.name] = (spec, arrays, rows)

    def teacher(keys, origins, dirs):
        rgb = origins.new_zeros(origins.shape)
        alpha = origins.new_zeros(origins.shape[:2])
        for arch in dict.fromkeys(a for a, _ in keys):
            if arch not in stores:
                raise KeyError(f"teacher: no NeRF shard of architecture {arch!r}")
            spec, arrays, rows = stores[arch]
            pos = [i for i, (a, _) in enumerate(keys) if a == arch]
            missing = [keys[i][1] for i in pos if keys[i][1] not in rows]
            if missing:
                raise KeyError(f"teacher: no {arch} NeRF of objects {missing[:5]}")
            idx = [rows[keys[i][1]] for i in pos]
            params = {k: v[idx] for k, v in arrays.items() if k != "sample_box"}
            stack = FieldStack.from_arrays(spec, params, device)
            boxes = torch.as_tensor(arrays["sample_box"][idx], device=origins.device)
            rgb[pos], alpha[pos] = render_in_box(stack, origins[pos], dirs[pos], n_samples,
                                                 spec.bbox, boxes=boxes)
        return rgb, alpha
    return teacher


# ----- models -------------------------------------------------------------------------
def build_encoder(cfg: dict) -> torch.nn.Module:
    """Encoder from config ``encoder``: {kind, d_embed, ...kind-specific sizes}."""
    cfg = dict(cfg)
    kind = cfg.pop("kind", "gmn")
    if kind == "gmn":
        return GMNEncoder(**cfg)
    if kind == "nf2vec_mlp":
        return NF2VecMLPEncoder(**cfg)
    if kind == "triplane_transformer":
        return TriplaneTransformer(**cfg)
    raise ValueError(f"encoder.kind {kind!r} unknown; choose one of {ENCODER_KINDS}")


@dataclass(frozen=True)
class EncoderTraining(Section):
    """The ``gmn.train`` section plus the job's ``loss`` variant and ``seed``."""

    SECTION = "gmn.train"
    encoder: dict
    decoder: dict
    loss: str
    lambda_c: float
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    rays_per_nerf: int
    samples_per_ray: int
    fg_threshold: float
    fg_weight: float
    bg_weight: float
    bbox: float
    seed: int

    def check(self, section: str) -> None:
        check_variant(self.loss)
        for key in ("epochs", "batch_size", "rays_per_nerf", "samples_per_ray"):
            if int(getattr(self, key)) < 1:
                self.bad(section, key, "must be >= 1")
        if "d_embed" not in self.encoder:
            self.bad(section, "encoder", "needs d_embed")


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def _batch_loss(cfg, encoder, decoder, siglip, inputs, items, keys, rays, teacher, device,
                gen, render_gen):
    """L_R and/or L_C of one batch (which ones: decoder / siglip present) and their values."""
    emb = encoder(to_device(inputs.batch(items), device))
    ids = [keys[i][1] for i in items]
    loss, parts = emb.new_zeros(()), {}
    if decoder is not None:
        origins, dirs = (t.to(device) for t in rays.sample(ids, int(cfg.rays_per_nerf), gen))
        with torch.no_grad():
            target_rgb, target_alpha = teacher([keys[i] for i in items], origins, dirs)
        codes = decoder.codes(emb, [keys[i][0] for i in items])
        pred_rgb, _ = render_in_box(lambda x: decoder(x, codes), origins, dirs,
                                    int(cfg.samples_per_ray), float(cfg.bbox), render_gen)
        l_r = rendering_loss(pred_rgb, target_rgb, target_alpha, float(cfg.fg_threshold),
                             float(cfg.fg_weight), float(cfg.bg_weight))
        loss = loss + l_r
        parts["render"] = l_r.item()
    if siglip is not None:
        l_c = siglip(emb, ids)
        loss = loss + (float(cfg.lambda_c) if decoder is not None else 1.0) * l_c
        parts["contrast"] = l_c.item()
    return loss, parts


# ----- training -----------------------------------------------------------------------
def train_encoder(cfg: dict, inputs: EncoderInputs, model_path, *, rays: ViewRays | None = None,
                  teacher: Teacher | None = None, checkpoint_path=None, input_files=(),
                  log_path=None, device=None, progress: bool = True) -> dict:
    """Train encoder (+ decoder for rendering variants) on the ``train`` split of ``inputs``.

    Writes ``model_path`` ({config, encoder, decoder, siglip, log}), an epoch checkpoint at
    ``checkpoint_path`` (resumed by a rerun of the same config, train items and
    ``input_files``; removed once the model is written) and the per-epoch log as JSON at
    ``log_path``. Returns the log.
    """
    run = EncoderTraining.from_dict(cfg)
    variant = run.loss
    if uses_rendering(variant) and (rays is None or teacher is None):
        raise ValueError(f"encoder loss {variant}: rendering needs both rays and a teacher")
    device = pick_device(device)
    torch.manual_seed(int(run.seed))
    train = inputs.meta.index[inputs.meta["split"] == "train"].to_numpy()
    if len(train) < 2:
        raise ValueError("encoder training: fewer than 2 items in the train split")
    train_ids = inputs.meta.loc[train, "object_id"].tolist()
    keys = list(zip(inputs.meta["arch"], inputs.meta["object_id"]))

    encoder = build_encoder(run.encoder).to(device)
    decoder = (NF2VecDecoder(d_embed=int(run.encoder["d_embed"]), bbox=float(run.bbox),
                             **run.decoder).to(device)
               if uses_rendering(variant) else None)
    siglip = SigLIP().to(device) if uses_contrast(variant) else None
    modules = [m for m in (encoder, decoder, siglip) if m is not None]
    params = [p for m in modules for p in m.parameters()]
    optimizer = torch.optim.AdamW(params, lr=float(run.lr), weight_decay=float(run.weight_decay))

    def epoch_batches(epoch):
        rng = np.random.default_rng(_epoch_seed(int(run.seed), epoch))
        local = (paired_batches(train_ids, int(run.batch_size), rng) if siglip is not None
                 else shuffled_batches(len(train), int(run.batch_size), rng))
        return [[int(train[i]) for i in b] for b in local]

    epochs = int(run.epochs)
    steps_per_epoch = len(epoch_batches(0))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=float(run.lr),
                                                    total_steps=epochs * steps_per_epoch)
    start, log = 0, []
    checkpoint = None if checkpoint_path is None else Checkpoint(checkpoint_path, {
        "config_hash": config_hash(cfg), "inputs": input_fingerprint(input_files),
        "train": [list(keys[i]) for i in train]})
    state = checkpoint.load(device) if checkpoint is not None else None
    if state is not None:
        for name, module in (("encoder", encoder), ("decoder", decoder), ("siglip", siglip)):
            if module is not None:
                module.load_state_dict(state[name])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, log = int(state["epoch"]), list(state["log"])

    bar = tqdm(range(start, epochs), desc=f"encoder {variant}", disable=not progress)
    for epoch in bar:
        for m in modules:
            m.train()
        seed = _epoch_seed(int(run.seed), epoch)
        gen = torch.Generator().manual_seed(seed)                     # rays (drawn on the CPU)
        render_gen = torch.Generator(device=device).manual_seed(seed)  # sample jitter, on device
        sums = {"loss": 0.0, "render": 0.0, "contrast": 0.0}
        batches = epoch_batches(epoch)
        for step, items in enumerate(batches):
            loss, parts = _batch_loss(run, encoder, decoder, siglip, inputs, items, keys, rays,
                                      teacher, device, gen, render_gen)
            for k, v in parts.items():
                sums[k] += v
            if not torch.isfinite(loss):
                raise FloatingPointError(f"encoder {variant}: loss is {loss.item()} at epoch {epoch} step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            sums["loss"] += loss.item()
        log.append({"epoch": epoch, **{k: v / len(batches) for k, v in sums.items()}})
        bar.set_postfix(loss=f"{log[-1]['loss']:.4f}")
        if checkpoint is not None and epoch + 1 < epochs:
            checkpoint.save({"epoch": epoch + 1, "log": log, "optimizer": optimizer.state_dict(),
                             "scheduler": scheduler.state_dict(),
                             **{n: m.state_dict() for n, m in (("encoder", encoder),
                                                               ("decoder", decoder),
                                                               ("siglip", siglip)) if m is not None}})
    save_torch({"config": cfg, "log": log, "encoder": encoder.state_dict(),
                "decoder": decoder.state_dict() if decoder is not None else {},
                "siglip": siglip.state_dict() if siglip is not None else {}}, model_path)
    if log_path is not None:
        write_json(log, log_path)
    if checkpoint is not None:
        checkpoint.clear()
    return {"log": log, "steps_per_epoch": steps_per_epoch}
