"""Training of SANE on the hash-grid NeRFs of rotated objects.

An object is one data point and its rotated instances are its views; a training pair is
two distinct instances of one object. Splits come from the objects' manifest split; the
token statistics come from the training NeRFs only. :func:`train_sane` writes the model
and its loss log, and a rerun resumes from its checkpoint. Evaluation is
:mod:`nfws.sane.evaluate`.
Training recipe: docs/design.md, "SANE training".
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from nfws.checkpoint import Checkpoint, input_fingerprint
from nfws.config_files import Section
from nfws.fields.shard import read_nerf_shard
from nfws.fields.spec import ArchSpec
from nfws.sane.losses import (LOSS_NAMES, geodesic_loss, latent_l2, nt_xent,
                              reconstruction_loss, weighted_total)
from nfws.sane.models import SANE, ModelConfig
from nfws.sane.rotations import (QUAT_COLUMNS, jitter_quats, read_rotated_manifest,
                                 relative_quat)
from nfws.sane.tokens import (Normaliser, TokenLayout, hash_tokens, mlp_tokens,
                              multiplicative_noise, permute_hidden, sample_points)
from nfws.store import config_hash, save_torch

POINT_MODES = ("shared", "independent")


# ----- configuration --------------------------------------------------------------------
@dataclass(frozen=True)
class TokenSampling(Section):
    """The ``sane.tokens`` section: query points per NeRF, shared or drawn per view."""

    SECTION = "sane.tokens"
    n_points: int
    points: str

    def check(self, section: str) -> None:
        if int(self.n_points) < 1:
            self.bad(section, "n_points", "must be >= 1")
        if self.points not in POINT_MODES:
            self.bad(section, "points", f"must be one of {POINT_MODES}")


@dataclass(frozen=True)
class TrainConfig(Section):
    """The ``sane.train`` section plus the token sampling keys of ``sane.tokens``."""

    SECTION = "sane.train"
    steps: int
    batch_size: int
    lr: float
    weight_decay: float
    grad_clip: float
    tau: float
    gamma: tuple
    noise_sigma: float
    permute: bool
    rotation_jitter_deg: float
    n_points: int
    points: str
    log_every: int
    eval_every: int
    checkpoint_every: int

    @classmethod
    def from_cfg(cls, cfg: dict) -> "TrainConfig":
        """Build from the whole ``sane`` section (keys of ``train`` and ``tokens``); a
        missing or unknown key is an error naming its section."""
        tokens = TokenSampling.from_dict(cfg.get("tokens"))
        train = cfg.get("train")
        if isinstance(train, dict) and set(train) & set(TokenSampling.keys()):
            raise ValueError(f"config sane.train: keys {TokenSampling.keys()} belong in sane.tokens")
        return cls.from_dict({**tokens.to_dict(), **(train or {})} if isinstance(train, dict)
                             else train)

    def check(self, section: str) -> None:
        object.__setattr__(self, "gamma", tuple(float(g) for g in self.gamma))
        for key in ("steps", "log_every", "eval_every", "checkpoint_every"):
            if int(getattr(self, key)) < 1:
                self.bad(section, key, "must be >= 1")
        if self.batch_size < 2:
            self.bad(section, "batch_size", "NT-Xent needs >= 2")
        if len(self.gamma) != len(LOSS_NAMES) or min(self.gamma) < 0:
            self.bad(section, "gamma", f"needs {len(LOSS_NAMES)} weights >= 0")
        for key in ("lr", "tau"):
            if not getattr(self, key) > 0:
                self.bad(section, key, "must be > 0")
        for key in ("noise_sigma", "rotation_jitter_deg"):
            if getattr(self, key) < 0:
                self.bad(section, key, "must be >= 0")


# ----- the NeRFs as data ----------------------------------------------------------------
@dataclass
class NerfSet:
    """All NeRFs of the SANE shards; rows aligned with ``table`` (instance manifest rows)."""

    spec: ArchSpec
    tables: torch.Tensor            # hash [N, L, T, F]
    weights: list[torch.Tensor]     # mlp.i [N, out, in]
    quats: torch.Tensor             # [N, 4]
    table: pd.DataFrame
    dropped: list[dict]             # farm failures {object_id, reason}

    def objects(self, split: str) -> list[np.ndarray]:
        """Row indices of each ``split`` object's instances (objects with >= 2 NeRFs)."""
        rows = self.table[self.table["split"] == split]
        groups = [g.index.to_numpy() for _, g in rows.groupby("base_object_id", sort=True)]
        return [g for g in groups if len(g) >= 2]

    def short_objects(self) -> list[str]:
        """Objects left with fewer than two NeRFs: no pair to learn or test on."""
        counts = self.table.groupby("base_object_id").size()
        return sorted(counts[counts < 2].index)


def load_nerfs(nerf_shards, rot_manifest) -> NerfSet:
    """Read every shard (one HASH architecture) and join it with the instance manifest."""
    manifest = read_rotated_manifest(rot_manifest).set_index("object_id")
    spec, parts, dropped = None, [], []
    for path in nerf_shards:
        shard = read_nerf_shard(path, arrays=())
        if spec is not None and shard.spec != spec:
            raise ValueError(f"{path}: architecture {shard.spec} differs from earlier shards' {spec}")
        spec = shard.spec
        unknown = [i for i in shard.object_ids if i not in manifest.index]
        if unknown:
            raise ValueError(f"{path}: NeRFs {unknown[:5]} are not in {rot_manifest}")
        parts.append(shard)
        dropped += shard.dropped
    if spec is None:
        raise ValueError("sane: no NeRF shards given")
    if spec.family != "HASH":
        raise ValueError(f"{nerf_shards[0]}: SANE needs HASH NeRFs, got family {spec.family}")
    ids = [i for p in parts for i in p.object_ids]
    if len(set(ids)) != len(ids):
        raise ValueError(f"sane: an instance appears in more than one of the shards {list(nerf_shards)}")
    cat = lambda name: torch.from_numpy(np.concatenate([p.params[name] for p in parts])).float()
    table = manifest.loc[ids].reset_index()
    return NerfSet(spec, cat("hash"), [cat(f"mlp.{i}") for i in range(len(spec.mlp_shapes()))],
                   torch.tensor(table[list(QUAT_COLUMNS)].to_numpy(), dtype=torch.float32),
                   table, dropped)


def fit_normaliser(nerfs: NerfSet, layout: TokenLayout) -> Normaliser:
    rows = torch.from_numpy(np.flatnonzero(nerfs.table["split"].to_numpy() == "train"))
    if len(rows) == 0:
        raise ValueError("sane: no train NeRFs to take token statistics from")
    return Normaliser.fit(nerfs.tables[rows], [w[rows] for w in nerfs.weights], layout)


def view_tokens(nerfs: NerfSet, rows: torch.Tensor, points: torch.Tensor, layout: TokenLayout,
                norm: Normaliser, device, generator: torch.Generator | None = None,
                permute: bool = False, noise: float = 0.0):
    """Normalised (input, target) tokens of NeRFs ``rows`` at points [len(rows), P, 3].

    Permutation changes input and target alike (it is the same function); noise only
    touches the input. Returns (hash_in, mlp_in, hash_target, mlp_target).
    """
    weights = [w[rows] for w in nerfs.weights]
    if permute:
        weights = permute_hidden(weights, generator)
    h, m = norm.normalise(hash_tokens(nerfs.tables[rows], points, layout.spec),
                          mlp_tokens(weights, layout), layout)
    h, m = h.to(device), m.to(device)
    if noise > 0:
        return multiplicative_noise(h, noise, generator), multiplicative_noise(m, noise, generator), h, m
    return h, m, h, m


# ----- one batch of pairs ---------------------------------------------------------------
def pair_losses(model: SANE, nerfs: NerfSet, rows_a, rows_b, points_a, points_b,
                norm: Normaliser, tc: TrainConfig, device, generator=None,
                augment: bool = False) -> dict[str, torch.Tensor]:
    """The four losses and their weighted total on pairs (rows_a[i], rows_b[i])."""
    mask = model.layout.mlp_mask().to(device)
    aug = dict(generator=generator, permute=augment and tc.permute,
               noise=tc.noise_sigma if augment else 0.0)
    ha, ma, ta_h, ta_m = view_tokens(nerfs, rows_a, points_a, model.layout, norm, device, **aug)
    hb, mb, tb_h, tb_m = view_tokens(nerfs, rows_b, points_b, model.layout, norm, device, **aug)
    xyz = torch.cat([points_a, points_b]).to(device)
    z = model.encode(torch.cat([ha, hb]), torch.cat([ma, mb]), xyz)
    rec_h, rec_m = model.decode(z, xyz)
    q_true = relative_quat(nerfs.quats[rows_a], nerfs.quats[rows_b])
    if augment:
        q_true = jitter_quats(q_true, tc.rotation_jitter_deg, generator)
    n = len(rows_a)
    proj = model.projection(z)
    parts = {"recon": reconstruction_loss(rec_h, torch.cat([ta_h, tb_h]), rec_m,
                                          torch.cat([ta_m, tb_m]), mask),
             "ntx": nt_xent(proj[:n], proj[n:], tc.tau),
             "rot": geodesic_loss(model.rotation(z[:n], z[n:]), q_true.to(device)),
             "l2": latent_l2(z)}
    parts["total"] = weighted_total(parts, tc.gamma)
    return parts


def draw_pairs(groups: list[np.ndarray], batch: int, generator: torch.Generator):
    """``batch`` distinct objects (all if fewer), two distinct instances of each."""
    pick = torch.randperm(len(groups), generator=generator)[:batch].tolist()
    rows_a, rows_b = [], []
    for g in (groups[i] for i in pick):
        a = int(torch.randint(len(g), (1,), generator=generator))
        b = (a + 1 + int(torch.randint(len(g) - 1, (1,), generator=generator))) % len(g)
        rows_a.append(int(g[a]))
        rows_b.append(int(g[b]))
    return torch.tensor(rows_a), torch.tensor(rows_b)


def first_pairs(groups: list[np.ndarray]):
    """Each object's first two instances: the fixed evaluation pairs."""
    return torch.tensor([int(g[0]) for g in groups]), torch.tensor([int(g[1]) for g in groups])


def fixed_points(n_points: int, seed: int) -> torch.Tensor:
    """The evaluation points [1, P, 3], one set for every NeRF."""
    return sample_points(1, n_points, torch.Generator().manual_seed(seed))


@torch.no_grad()
def evaluate_pairs(model, nerfs, groups, norm, tc, device, seed) -> dict[str, float]:
    """Losses (no augmentation) on each object's first pair, one batch, fixed points."""
    if len(groups) < 2:
        raise ValueError(f"sane: need >= 2 objects with two NeRFs to evaluate, got {len(groups)}")
    was_training = model.training
    model.eval()
    rows_a, rows_b = first_pairs(groups)
    pts = fixed_points(tc.n_points, seed).expand(len(rows_a), -1, -1)
    out = {k: float(v) for k, v in pair_losses(model, nerfs, rows_a, rows_b, pts, pts, norm,
                                               tc, device).items()}
    model.train(was_training)
    return out


# ----- training -------------------------------------------------------------------------
def build_model(spec: ArchSpec, model_cfg: dict, n_points: int) -> SANE:
    mc = ModelConfig.from_dict(model_cfg)
    return SANE(TokenLayout(spec, n_points, mc.n_pos), mc)


def train_sane(nerf_shards, rot_manifest, cfg: dict, out_model, seed: int, device) -> dict:
    """Train SANE on the train objects' NeRFs and write ``out_model`` (.pt).

    Reads the NeRF shards and the instance manifest; ``cfg`` is the ``sane`` section
    (``model``, ``train``, ``tokens``). Checkpoints to ``<out_model>.progress.pt`` and resumes
    from it. The model file holds the weights, configs, architecture, normaliser and the
    loss log (train every ``log_every`` steps, test every ``eval_every``). Returns the log.
    """
    device = torch.device(device)
    tc = TrainConfig.from_cfg(cfg)
    nerfs = load_nerfs(nerf_shards, rot_manifest)
    train_groups, test_groups = nerfs.objects("train"), nerfs.objects("test")
    if len(train_groups) < 2:
        raise ValueError(f"{rot_manifest}: need >= 2 train objects with two NeRFs, got "
                         f"{len(train_groups)}")
    meta = {"config_hash": config_hash({"model": cfg.get("model"), "train": asdict(tc)}),
            "seed": int(seed), "shards": [str(p) for p in nerf_shards]}
    checkpoint = Checkpoint.beside(out_model,
                            {**meta, "inputs": input_fingerprint([*nerf_shards, rot_manifest])})
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model = build_model(nerfs.spec, cfg.get("model"), tc.n_points).to(device)
        norm = fit_normaliser(nerfs, model.layout)
        optimiser = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, tc.lr, total_steps=tc.steps)
        generator = torch.Generator().manual_seed(seed)
        log = {"train_step": [], "test_step": [],
               **{f"train_{k}": [] for k in (*LOSS_NAMES, "total")},
               **{f"test_{k}": [] for k in (*LOSS_NAMES, "total")}}
        start = _resume(checkpoint, model, optimiser, schedule, generator, log, device)
        acc = {k: 0.0 for k in (*LOSS_NAMES, "total")}
        model.train()
        for step in tqdm(range(start, tc.steps), initial=start, total=tc.steps, desc="sane",
                         mininterval=2.0):
            rows_a, rows_b = draw_pairs(train_groups, tc.batch_size, generator)
            pts_a = sample_points(len(rows_a), tc.n_points, generator)
            pts_b = pts_a if tc.points == "shared" else sample_points(len(rows_a), tc.n_points, generator)
            parts = pair_losses(model, nerfs, rows_a, rows_b, pts_a, pts_b, norm, tc, device,
                                generator, augment=True)
            if not torch.isfinite(parts["total"]):
                raise FloatingPointError(f"sane training: non-finite loss at step {step}: "
                                         f"{ {k: float(v) for k, v in parts.items()} }")
            optimiser.zero_grad(set_to_none=True)
            parts["total"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            optimiser.step()
            schedule.step()
            for k in acc:
                acc[k] += float(parts[k].detach()) / tc.log_every
            if (step + 1) % tc.log_every == 0:
                log["train_step"].append(step + 1)
                for k in acc:
                    log[f"train_{k}"].append(acc[k])
                    acc[k] = 0.0
            if len(test_groups) >= 2 and ((step + 1) % tc.eval_every == 0 or step + 1 == tc.steps):
                held = evaluate_pairs(model, nerfs, test_groups, norm, tc, device, seed)
                log["test_step"].append(step + 1)
                for k, v in held.items():
                    log[f"test_{k}"].append(v)
            if (step + 1) % tc.checkpoint_every == 0 and step + 1 < tc.steps:
                checkpoint.save({"step": step + 1, "model": model.state_dict(),
                                 "optimiser": optimiser.state_dict(),
                                 "schedule": schedule.state_dict(),
                                 "generator": generator.get_state(),
                                 "torch_rng": torch.get_rng_state(), "log": log})
    save_torch({**meta, "model": model.state_dict(), "model_cfg": model.cfg.to_dict(),
                "train_cfg": {**asdict(tc), "gamma": list(tc.gamma)}, "spec": nerfs.spec.to_dict(),
                "normaliser": norm.state(), "log": log}, out_model)
    checkpoint.clear()
    return log


def _resume(checkpoint, model, optimiser, schedule, generator, log, device) -> int:
    ck = checkpoint.load(device)
    if ck is None:
        return 0
    model.load_state_dict(ck["model"])
    optimiser.load_state_dict(ck["optimiser"])
    schedule.load_state_dict(ck["schedule"])
    generator.set_state(ck["generator"].cpu())
    torch.set_rng_state(ck["torch_rng"].cpu())
    log.update(ck["log"])
    return int(ck["step"])
