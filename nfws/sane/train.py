"""Training and evaluation of SANE on the hash-grid NeRFs of rotated objects.

Data: an object is one data point and its rotated instances are its views; a training
pair is two distinct instances of one object (NT-Xent positives, rotation target
``q_b ⊗ q_a^{-1}``). Splits come from the objects' manifest split; the token statistics
come from the training NeRFs only.

Training (:func:`train_sane`): AdamW with a one-cycle schedule and gradient clipping;
each step draws ``batch_size`` distinct training objects and two instances of each,
augments them (hidden-neuron permutation, multiplicative token noise, rotation jitter on
the target) and minimises γ·(recon, NT-Xent, rotation, L2). Held-out losses on the test
objects are logged every ``eval_every`` steps (monitoring only; nothing is selected on
them). Checkpoints every ``checkpoint_every`` steps; a rerun resumes from the checkpoint.

Evaluation (:func:`evaluate_sane`): losses on the train and test objects; median
rotation error over every ordered pair of instances against the predict-the-mean
baseline; retrieval of the same object across rotations; a logistic-regression probe
for the class; loss curves and a t-SNE plot; a CSV/Markdown table beside the report.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from math import comb
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from tqdm import tqdm  # noqa: E402

from nfws.eval.retrieval import recall_at_k  # noqa: E402
from nfws.eval.tables import write_table  # noqa: E402
from nfws.fields.spec import ArchSpec  # noqa: E402
from nfws.sane.losses import (LOSS_NAMES, geodesic_loss, latent_l2, nt_xent,  # noqa: E402
                              reconstruction_loss, weighted_total)
from nfws.sane.model import SANE, ModelConfig  # noqa: E402
from nfws.sane.rotations import (QUAT_COLUMNS, geodesic_angle, jitter_quats,  # noqa: E402
                                 mean_quat, read_rotated_manifest, relative_quat)
from nfws.sane.tokens import (Normaliser, TokenLayout, hash_tokens, mlp_tokens,  # noqa: E402
                              multiplicative_noise, permute_hidden, sample_points)
from nfws.checkpoint import Checkpoint, input_fingerprint  # noqa: E402
from nfws.config_files import checked_section  # noqa: E402
from nfws.eval.figures import save_figure  # noqa: E402
from nfws.store import (config_hash, load_torch, read_zarr,  # noqa: E402
                        save_torch, write_json, write_parquet)

POINT_MODES = ("shared", "independent")
TOKEN_KEYS = ("n_points", "points")    # TrainConfig's keys of ``sane.tokens``
EVAL_KEYS = ("ks", "tsne_perplexity")
REPORT = {"recon": "≈ 0.1 (train and test)", "ntx": "< 0.1",
          "rot_test": "did not generalise (test loss flat)"}


# ----- configuration --------------------------------------------------------------------
@dataclass(frozen=True)
class TrainConfig:
    """The ``sane.train`` section plus the token sampling keys of ``sane.tokens``.

    No defaults: every key comes from the config (``config.yaml``, checked by the schema).
    """

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
        train_keys = [f.name for f in fields(cls) if f.name not in TOKEN_KEYS]
        merged = {**checked_section(cfg.get("train"), train_keys, "sane.train"),
                  **checked_section(cfg.get("tokens"), TOKEN_KEYS, "sane.tokens")}
        merged["gamma"] = tuple(float(g) for g in merged["gamma"])
        out = cls(**merged)
        for key in ("steps", "n_points", "log_every", "eval_every", "checkpoint_every"):
            if int(getattr(out, key)) < 1:
                raise ValueError(f"sane.train.{key}: must be >= 1, got {getattr(out, key)}")
        if out.batch_size < 2:
            raise ValueError(f"sane.train.batch_size: NT-Xent needs >= 2, got {out.batch_size}")
        if out.points not in POINT_MODES:
            raise ValueError(f"sane.tokens.points: must be one of {POINT_MODES}, got {out.points!r}")
        if len(out.gamma) != len(LOSS_NAMES) or min(out.gamma) < 0:
            raise ValueError(f"sane.train.gamma: needs {len(LOSS_NAMES)} weights >= 0, got {out.gamma}")
        if out.lr <= 0 or out.tau <= 0 or out.noise_sigma < 0 or out.rotation_jitter_deg < 0:
            raise ValueError("sane.train: lr and tau must be > 0, noise_sigma and "
                             "rotation_jitter_deg >= 0")
        return out


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
        arrays, attrs = read_zarr(path)
        if "arch" not in attrs or "object_ids" not in arrays:
            raise ValueError(f"{path}: not a NeRF shard (needs attrs 'arch' and array 'object_ids')")
        shard_spec = ArchSpec.from_dict(data=attrs["arch"])
        if spec is not None and shard_spec != spec:
            raise ValueError(f"{path}: architecture {shard_spec} differs from earlier shards' {spec}")
        spec = shard_spec
        missing = sorted(set(spec.param_shapes()) - set(arrays))
        if missing:
            raise ValueError(f"{path}: missing parameter arrays {missing}")
        ids = [str(s) for s in arrays["object_ids"]]
        unknown = [i for i in ids if i not in manifest.index]
        if unknown:
            raise ValueError(f"{path}: NeRFs {unknown[:5]} are not in {rot_manifest}")
        parts.append((ids, arrays))
        dropped += list(attrs.get("dropped", []))
    if spec is None:
        raise ValueError("sane: no NeRF shards given")
    if spec.family != "HASH":
        raise ValueError(f"{nerf_shards[0]}: SANE needs HASH NeRFs, got family {spec.family}")
    ids = [i for p in parts for i in p[0]]
    if len(set(ids)) != len(ids):
        raise ValueError(f"sane: an instance appears in more than one of the shards {list(nerf_shards)}")
    cat = lambda name: torch.from_numpy(np.concatenate([p[1][name] for p in parts])).float()
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
    (``model``, ``train``, ``tokens``). Checkpoints to ``<out_model>.ckpt`` and resumes
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
    checkpoint = Checkpoint(f"{out_model}.ckpt",
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


def load_model(path, device="cpu") -> tuple[SANE, Normaliser, dict]:
    """The trained model (eval mode), its normaliser and the whole saved record."""
    record = load_torch(path, map_location=device)
    spec = ArchSpec.from_dict(data=record["spec"])
    model = build_model(spec, record["model_cfg"], int(record["train_cfg"]["n_points"]))
    model.load_state_dict(record["model"])
    return model.to(device).eval(), Normaliser(**record["normaliser"]), record


# ----- evaluation -----------------------------------------------------------------------
@torch.no_grad()
def embed_all(model: SANE, nerfs: NerfSet, norm: Normaliser, n_points: int, seed: int,
              device) -> tuple[np.ndarray, torch.Tensor]:
    """Pooled content embeddings [N, d_latent] and latents [N, C, d_latent] of every NeRF."""
    rows = torch.arange(len(nerfs.table))
    pts = fixed_points(n_points, seed).expand(len(rows), -1, -1)
    h, m, _, _ = view_tokens(nerfs, rows, pts, model.layout, norm, device)
    z = model.encode(h, m, pts.to(device))
    return model.content(z).cpu().numpy(), z


@torch.no_grad()
def rotation_errors(model: SANE, nerfs: NerfSet, z: torch.Tensor, groups, baseline_q: np.ndarray):
    """Angles (degrees) of the model's and of the constant ``baseline_q``'s relative-rotation
    errors over every ordered pair of distinct instances of each object."""
    pairs = [(int(a), int(b)) for g in groups for a in g for b in g if a != b]
    rows_a, rows_b = torch.tensor([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs])
    q_true = relative_quat(nerfs.quats[rows_a], nerfs.quats[rows_b]).double()
    q_pred = torch.nn.functional.normalize(model.rotation(z[rows_a], z[rows_b]).cpu().double(), dim=-1)
    base = torch.as_tensor(baseline_q).expand_as(q_true)
    return (torch.rad2deg(geodesic_angle(q_pred, q_true)).numpy(),
            torch.rad2deg(geodesic_angle(base, q_true)).numpy())


def chance_recall(n_gallery: int, n_hits: np.ndarray, k: int) -> float:
    """Expected recall@k (%) of a random ranking: 1 − C(G − m, k) / C(G, k), averaged."""
    return 100.0 * float(np.mean([1.0 - comb(n_gallery - m, k) / comb(n_gallery, k) for m in n_hits]))


def linear_probe(train_x, train_y, test_x, test_y, seed: int) -> tuple[float, float]:
    """Class accuracy (%) of a logistic regression fitted on train embeddings, and the
    majority-class accuracy of the train labels on the test set."""
    scaler = StandardScaler().fit(train_x)
    clf = LogisticRegression(max_iter=2000, random_state=seed)
    clf.fit(scaler.transform(train_x), train_y)
    acc = 100.0 * float((clf.predict(scaler.transform(test_x)) == test_y).mean())
    majority = np.bincount(train_y).argmax()
    return acc, 100.0 * float((test_y == majority).mean())


def evaluate_sane(model_path, nerf_shards, rot_manifest, cfg: dict, out_dir, seed: int,
                  device) -> pd.DataFrame:
    """Evaluate a trained SANE model; write tables, plots and embeddings into ``out_dir``.

    Writes ``sane_metrics.csv/.md`` (ours beside the report's statements),
    ``sane_metrics.json``, ``sane_embeddings.parquet``, ``sane_loss_curves.png`` and
    ``sane_tsne.png``. ``cfg`` is the ``sane`` section (``eval``: ks, tsne_perplexity).
    """
    device = torch.device(device)
    out_dir = Path(out_dir)
    ev = checked_section(cfg.get("eval"), EVAL_KEYS, "sane.eval")
    ks = [int(k) for k in ev["ks"]]
    model, norm, record = load_model(model_path, device)
    tc = TrainConfig(**{**record["train_cfg"], "gamma": tuple(record["train_cfg"]["gamma"])})
    nerfs = load_nerfs(nerf_shards, rot_manifest)
    if nerfs.spec.to_dict() != record["spec"]:
        raise ValueError(f"{model_path}: trained on architecture {record['spec']}, shards hold "
                         f"{nerfs.spec.to_dict()}")
    groups = {s: nerfs.objects(s) for s in ("train", "test")}
    for split, g in groups.items():
        if len(g) < 2:
            raise ValueError(f"{rot_manifest}: need >= 2 {split} objects with two NeRFs, got {len(g)}")
    losses = {s: evaluate_pairs(model, nerfs, g, norm, tc, device, seed) for s, g in groups.items()}
    emb, z = embed_all(model, nerfs, norm, tc.n_points, seed, device)
    train_pairs = [(int(a), int(b)) for g in groups["train"] for a in g for b in g if a != b]
    baseline_q = mean_quat(relative_quat(nerfs.quats[[a for a, _ in train_pairs]],
                                         nerfs.quats[[b for _, b in train_pairs]]).numpy())
    rot = {s: rotation_errors(model, nerfs, z, g, baseline_q) for s, g in groups.items()}

    table = nerfs.table
    test_rows = np.flatnonzero(table["split"].to_numpy() == "test")
    test_ids = table["base_object_id"].to_numpy()[test_rows]
    recalls, n_queries = recall_at_k(emb[test_rows], test_ids, emb[test_rows], test_ids, ks,
                                     exclude=np.eye(len(test_rows), dtype=bool))
    n_hits = np.array([(test_ids == i).sum() - 1 for i in test_ids])
    n_hits = n_hits[n_hits > 0]
    train_rows = np.flatnonzero(table["split"].to_numpy() == "train")
    labels = table["class_index"].to_numpy()
    probe, majority = linear_probe(emb[train_rows], labels[train_rows], emb[test_rows],
                                   labels[test_rows], seed)

    rows = []
    for split in ("train", "test"):
        rows += [{"metric": "reconstruction MSE (standardised tokens)", "split": split,
                  "ours": losses[split]["recon"], "baseline": float("nan"), "report": REPORT["recon"]},
                 {"metric": f"NT-Xent (tau={tc.tau}, {len(groups[split])} objects)", "split": split,
                  "ours": losses[split]["ntx"], "baseline": math.log(2 * len(groups[split]) - 1),
                  "report": REPORT["ntx"]},
                 {"metric": "rotation error, median (deg)", "split": split,
                  "ours": float(np.median(rot[split][0])), "baseline": float(np.median(rot[split][1])),
                  "report": REPORT["rot_test"] if split == "test" else "overfits (Fig. 12a)"}]
    rows += [{"metric": f"retrieval across rotations recall@{k} (%)", "split": "test",
              "ours": recalls[k], "baseline": chance_recall(len(test_rows) - 1, n_hits, k),
              "report": "–"} for k in ks]
    rows.append({"metric": "class linear probe accuracy (%)", "split": "test", "ours": probe,
                 "baseline": majority, "report": "–"})
    df = pd.DataFrame(rows)
    note = ("Baselines: NT-Xent of uninformative embeddings = log(2N − 1); rotation = always "
            "predicting the mean relative rotation of the training pairs; retrieval = random "
            "ranking; probe = majority training class. The report gives no numeric table, only "
            "the statements quoted in the 'report' column. Losses are on each object's first "
            "two rotations with fixed points; rotation errors over every ordered pair; "
            f"retrieval over {n_queries} test instances.")
    write_table(df, out_dir / "sane_metrics.csv", out_dir / "sane_metrics.md",
                "SANE on hash-grid NeRFs", note)
    write_json({"losses": losses, "rotation_median_deg": {s: float(np.median(r[0])) for s, r in rot.items()},
                "rotation_baseline_median_deg": {s: float(np.median(r[1])) for s, r in rot.items()},
                "baseline_quaternion": baseline_q.tolist(), "recall": recalls, "probe_accuracy": probe,
                "majority_accuracy": majority, "dropped_nerfs": nerfs.dropped,
                "objects_without_pair": nerfs.short_objects()}, out_dir / "sane_metrics.json")
    emb_df = table[["object_id", "base_object_id", "class_name", "class_index", "split"]].copy()
    emb_df["embedding"] = list(emb.astype(np.float32))
    write_parquet(emb_df, out_dir / "sane_embeddings.parquet")
    plot_loss_curves(record["log"], out_dir / "sane_loss_curves.png")
    plot_tsne(emb, table, out_dir / "sane_tsne.png", seed, float(ev["tsne_perplexity"]))
    return df


def plot_loss_curves(log: dict, out_png) -> None:
    """Train (solid) and test (dashed) curves of every loss term, like report Fig. 12."""
    names = [*LOSS_NAMES, "total"]
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3))
    for ax, name in zip(axes, names):
        ax.plot(log["train_step"], log[f"train_{name}"], label="train")
        if log["test_step"]:
            ax.plot(log["test_step"], log[f"test_{name}"], "--", label="test")
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.set_yscale("log" if min(log[f"train_{name}"], default=1.0) > 0 else "linear")
    axes[0].legend()
    fig.tight_layout()
    save_figure(fig, out_png, dpi=110)


def plot_tsne(emb: np.ndarray, table: pd.DataFrame, out_png, seed: int, perplexity: float) -> None:
    """t-SNE of the pooled embeddings: colour = class, circle = train, triangle = test."""
    if len(emb) < 4:
        raise ValueError(f"t-SNE: need >= 4 embeddings, got {len(emb)}")
    pts = TSNE(n_components=2, perplexity=min(perplexity, (len(emb) - 1) / 3.0), init="pca",
               random_state=seed).fit_transform(emb.astype(np.float64))
    cmap = plt.get_cmap("tab20")
    fig, ax = plt.subplots(figsize=(7, 6))
    for split, marker in (("train", "o"), ("test", "^")):
        sel = (table["split"] == split).to_numpy()
        ax.scatter(pts[sel, 0], pts[sel, 1], marker=marker, s=24, linewidths=0,
                   color=[cmap(int(c) % 20) for c in table["class_index"].to_numpy()[sel]])
    handles = [plt.Line2D([], [], ls="", marker="o", color=cmap(int(c) % 20), label=n)
               for c, n in table[["class_index", "class_name"]].drop_duplicates().sort_values(
                   "class_index").itertuples(index=False)]
    ax.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.set_title("SANE embeddings (o train, ^ test)")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    save_figure(fig, out_png, dpi=110)
