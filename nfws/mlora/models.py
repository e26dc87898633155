"""The six per-instance weight representations of the mLoRA study, as batched fields.

A representation is a list of named tensors (the layout, ``Representation.layout``) with
one shared initialisation ``mean + scale ⊙ ι`` (ι ~ N(0, I), drawn from a seed) and
optional frozen entries (the asymmetric mask, drawn from ``mask_seed``, shared by all
instances). Kinds: ``mlp``, ``lora`` (W̄ + BA), ``mlora`` (W̄ ⊙ BA), each also ``*_asym``;
the reference ``base_latent`` (:func:`latent_on_base`) fits only the base field's latent.
A batch of B instances holds each tensor as [B, ...]; instances never interact.
Design: docs/trackb.md, "The six representations".
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from nfws.mlora.modulated import linear, synthesis

MLORA_INITS = ("partition", "uniform", "identity")
KINDS = ("mlp", "mlp_asym", "lora", "lora_asym", "mlora", "mlora_asym")
DISPLAY_NAMES = {"mlp": "MLP", "mlp_asym": "MLP-Asym", "lora": "LoRA",
                 "lora_asym": "LoRA-Asym", "mlora": "mLoRA", "mlora_asym": "mLoRA-Asym"}


def n_frozen_per_row(d_out: int, d_in: int) -> int:
    """round(√d_out) frozen entries per row, leaving at least one trainable entry."""
    return max(0, min(int(round(math.sqrt(d_out))), d_in - 1))


def asymmetric_mask(rows: int, cols: int, n_per_row: int,
                    generator: torch.Generator) -> torch.Tensor:
    """Boolean [rows, cols] with exactly ``n_per_row`` True (frozen) entries per row."""
    if not 0 <= n_per_row < cols:
        raise ValueError(f"asymmetric mask: {n_per_row} frozen of {cols} columns per row")
    order = torch.rand(rows, cols, generator=generator).argsort(dim=1)
    mask = torch.zeros(rows, cols, dtype=torch.bool)
    mask.scatter_(1, order[:, :n_per_row], True)
    return mask


@dataclass
class Entry:
    """One named per-instance tensor: init = mean + scale·ι (both scalars or of ``shape``);
    frozen entries where mask."""
    name: str
    shape: tuple
    layer: int
    role: str
    mean: float | torch.Tensor
    scale: float | torch.Tensor
    mask: torch.Tensor | None = None
    frozen: torch.Tensor | None = None

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


class Representation:
    """Layout, shared initialisation, masks and batched forward of one representation."""

    def __init__(self, kind: str, entries: list[Entry], forward, out_dim: int,
                 buffers: dict | None = None):
        self.kind = kind
        self.entries = entries
        self._forward = forward
        self.out_dim = out_dim
        self.buffers = buffers or {}     # frozen shared tensors the forward reads

    @property
    def n_params(self) -> int:
        return sum(e.numel for e in self.entries)

    @property
    def n_trainable(self) -> int:
        return sum(e.numel - (int(e.mask.sum()) if e.mask is not None else 0)
                   for e in self.entries)

    def layout(self) -> list[dict]:
        return [{"name": e.name, "shape": list(e.shape), "layer": e.layer, "role": e.role,
                 "n_frozen": int(e.mask.sum()) if e.mask is not None else 0}
                for e in self.entries]

    def frozen_flat(self) -> torch.Tensor:
        """Bool [P]: True where the asymmetric mask freezes an entry."""
        return torch.cat([(e.mask if e.mask is not None
                           else torch.zeros(e.shape, dtype=torch.bool)).reshape(-1)
                          for e in self.entries])

    def draw_codes(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """ι ~ N(0, I) for n instances (the paper's initialisation codes)."""
        return {e.name: torch.randn((n, *e.shape), generator=generator) for e in self.entries}

    def init(self, codes: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Parameters mean + scale·ι with frozen entries in place."""
        return self.apply_mask({e.name: e.mean + e.scale * codes[e.name] for e in self.entries})

    def apply_mask(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Replace masked entries by their frozen values (no gradient flows to them)."""
        out = {}
        for e in self.entries:
            p = params[e.name]
            if e.mask is not None:
                p = torch.where(e.mask.to(p.device), e.frozen.to(p.device, p.dtype), p)
            out[e.name] = p
        return out

    def forward(self, params: dict[str, torch.Tensor], points: torch.Tensor) -> torch.Tensor:
        """points [B, N, coord_dim] → outputs [B, N, out_dim] for B instances."""
        return self._forward(self.apply_mask(params), points, self.buffers)

    def flatten(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        p = self.apply_mask(params)
        return torch.cat([p[e.name].reshape(p[e.name].shape[0], -1) for e in self.entries], 1)

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        if flat.shape[-1] != self.n_params:
            raise ValueError(f"{self.kind}: flat weights have {flat.shape[-1]} values, "
                             f"layout needs {self.n_params}")
        out, i = {}, 0
        for e in self.entries:
            out[e.name] = flat[:, i:i + e.numel].reshape(flat.shape[0], *e.shape)
            i += e.numel
        return out

    def to(self, device) -> "Representation":
        self.buffers = {k: ([t.to(device) for t in v] if isinstance(v, list) else v.to(device))
                        for k, v in self.buffers.items()}
        for e in self.entries:
            if e.mask is not None:
                e.mask, e.frozen = e.mask.to(device), e.frozen.to(device)
        return self


def _frozen_values(entry_shape, mask, value_std, generator) -> torch.Tensor:
    return torch.randn(entry_shape, generator=generator) * value_std * mask


def standalone_mlp(asym: bool, coord_dim: int, out_dim: int, hidden: int, omega0: float,
                   kappa: float, mask_seed: int) -> Representation:
    """sin(ω0 (W1 p + b1)) + 2 linear layers; SIREN/torch-default init stds."""
    shapes = [(hidden, coord_dim), (hidden, hidden), (out_dim, hidden)]
    w_std = [1.0 / (coord_dim * math.sqrt(3))] + [1.0 / math.sqrt(3 * hidden)] * 2
    b_std = [1.0 / math.sqrt(3 * coord_dim)] + [1.0 / math.sqrt(3 * hidden)] * 2
    gen = torch.Generator().manual_seed(mask_seed)
    entries = []
    for layer, (shape, ws, bs) in enumerate(zip(shapes, w_std, b_std)):
        entry = Entry(f"layer{layer}.weight", shape, layer, "weight", 0.0, ws)
        if asym:
            entry.mask = asymmetric_mask(*shape, n_frozen_per_row(*shape), gen)
            entry.frozen = _frozen_values(shape, entry.mask, math.sqrt(kappa) * ws, gen)
        entries += [entry, Entry(f"layer{layer}.bias", (shape[0],), layer, "bias", 0.0, bs)]

    def forward(p, x, _):
        h = torch.sin(omega0 * linear(x, p["layer0.weight"], p["layer0.bias"]))
        h = F.relu(linear(h, p["layer1.weight"], p["layer1.bias"]))
        return linear(h, p["layer2.weight"], p["layer2.bias"])

    return Representation("mlp_asym" if asym else "mlp", entries, forward, out_dim)


def lora_on_base(multiplicative: bool, asym: bool, base: dict, rank: int, kappa: float,
                 mlora_init: str, mlora_init_std: float, mask_seed: int) -> Representation:
    """Rank-r adapters on every synthesis layer of a frozen, style-folded base.

    ``base`` holds ``weights``/``biases`` (lists of [out, in] / [out] from
    ``ModulatedField.folded``), ``enc_weight``/``enc_bias``, ``omega0`` and ``n_blocks``.
    Every layer gets the same rank r (also the 1–3-row output layer, where BA then has
    rank ≤ d_out), so each layer holds exactly r (a_i, b_i) pairs for the diffusion tokens.
    Initialisation, with BA = 1 (multiplicative) or BA = 0 (additive) up to the noise, so
    W' = W̄: additive A ~ N(0, 1/d_in), B = 0; multiplicative by ``mlora_init``:
    ``partition`` every input column belongs to one pair, b_i = 1 and a_i = 1 on its own
    columns, 0 elsewhere (the pairs differ from the start; with the asymmetric mask a column
    belongs to a pair that does not freeze it); ``uniform`` every pair at a, b = 1/√r
    (the pairs start alike); ``identity`` the first pair holds BA = 1 exactly, the others
    start as additive LoRA does, b_i = 0 and a_i ~ N(0, σ²/d_in), and the mask leaves the
    first pair alone. Noise: σ/√r on every entry (σ/√d_in on the a_i of ``identity``).
    """
    if mlora_init not in MLORA_INITS:
        raise ValueError(f"fit.mlora_init must be one of {MLORA_INITS}, got {mlora_init!r}")
    weights = base["weights"]
    gen = torch.Generator().manual_seed(mask_seed)
    entries = []
    for layer, w in enumerate(weights):
        d_out, d_in = w.shape
        mask = asymmetric_mask(rank, d_in, n_frozen_per_row(d_out, d_in), gen) if asym else None
        if mask is not None and multiplicative and mlora_init == "identity":
            mask[0] = False
        a, b = (_mlora_pair if multiplicative else _lora_pair)(
            f"layer{layer}.", layer, rank, d_in, d_out, mlora_init, mlora_init_std, mask)
        if mask is not None:
            a.mask = mask
            a.frozen = (torch.zeros(a.shape) if multiplicative else
                        _frozen_values(a.shape, a.mask, math.sqrt(kappa) * a.scale, gen))
        entries += [a, b]
    omega0, n_blocks = base["omega0"], base["n_blocks"]

    def forward(p, x, buf):
        h = torch.sin(omega0 * F.linear(x, buf["enc_weight"], buf["enc_bias"]))
        adapted = []
        for layer, w in enumerate(buf["weights"]):
            ba = torch.bmm(p[f"layer{layer}.B"], p[f"layer{layer}.A"])
            adapted.append(w * ba if multiplicative else w + ba)
        return synthesis(h, adapted, buf["biases"], n_blocks)

    kind = ("mlora" if multiplicative else "lora") + ("_asym" if asym else "")
    buffers = {k: base[k] for k in ("weights", "biases", "enc_weight", "enc_bias")}
    return Representation(kind, entries, forward, weights[-1].shape[0], buffers)


def _lora_pair(name: str, layer: int, r: int, d_in: int, d_out: int, *_) -> tuple[Entry, Entry]:
    """Additive A [r, d_in] ~ N(0, 1/d_in) and B [d_out, r] = 0 (``lora_on_base``)."""
    return (Entry(name + "A", (r, d_in), layer, "A", 0.0, 1 / math.sqrt(d_in)),
            Entry(name + "B", (d_out, r), layer, "B", 0.0, 0.0))


def _mlora_pair(name: str, layer: int, r: int, d_in: int, d_out: int, init: str,
                std: float, mask: torch.Tensor | None) -> tuple[Entry, Entry]:
    """Multiplicative A [r, d_in] and B [d_out, r] started by ``init`` (``lora_on_base``)."""
    noise = std / math.sqrt(r)
    if init == "uniform":
        return (Entry(name + "A", (r, d_in), layer, "A", 1 / math.sqrt(r), noise),
                Entry(name + "B", (d_out, r), layer, "B", 1 / math.sqrt(r), noise))
    if init == "partition":
        owners = partition_owners(r, d_in, mask).float()
        return (Entry(name + "A", (r, d_in), layer, "A", owners, noise),
                Entry(name + "B", (d_out, r), layer, "B", 1.0, noise))
    a_mean, b_mean = torch.zeros(r, d_in), torch.zeros(d_out, r)
    a_mean[0], b_mean[:, 0] = 1.0, 1.0
    a_scale = torch.full((r, d_in), std / math.sqrt(d_in))
    a_scale[0] = 0.0                               # the base's pair starts exact
    return (Entry(name + "A", (r, d_in), layer, "A", a_mean, a_scale),
            Entry(name + "B", (d_out, r), layer, "B", b_mean, 0.0))


def partition_owners(r: int, d_in: int, mask: torch.Tensor | None) -> torch.Tensor:
    """Bool [r, d_in]: column j belongs to the first pair, in the order j mod r, j mod r + 1,
    …, that ``mask`` (True = frozen) leaves free; a column every pair freezes belongs to
    none (its BA starts at 0)."""
    owners = torch.zeros(r, d_in, dtype=torch.bool)
    for j in range(d_in):
        for i in ((j + k) % r for k in range(r)):
            if mask is None or not mask[i, j]:
                owners[i, j] = True
                break
    return owners


def latent_on_base(model, z0: torch.Tensor) -> Representation:
    """The frozen base field ``model`` (``ModulatedField``) with one latent z [d_z] per
    instance as its only parameters; every instance starts at ``z0`` (scale 0)."""
    entry = Entry("z", tuple(z0.shape), 0, "latent", z0.detach().clone(), 0.0)

    def forward(p, x, buf):
        return buf["model"](x, p["z"])

    return Representation("base_latent", [entry], forward, model.cfg["out_dim"],
                          {"model": model.requires_grad_(False)})


def build_representation(kind: str, cfg: dict, coord_dim: int, out_dim: int,
                         base: dict | None) -> Representation:
    """The representation ``kind`` from the ``fit`` config section (keys named below)."""
    if kind not in KINDS:
        raise ValueError(f"unknown representation {kind!r}; known: {KINDS}")
    for key in ("kappa", "mask_seed"):
        if key not in cfg:
            raise KeyError(f"fit config: missing key {key!r}")
    asym = kind.endswith("_asym")
    if kind.startswith("mlp"):
        for key in ("mlp_hidden", "omega0"):
            if key not in cfg:
                raise KeyError(f"fit config: missing key {key!r}")
        if cfg["mlp_hidden"] is None:
            raise ValueError("fit.mlp_hidden is null: resolve it to the matched width with "
                             "nfws.mlora.config.fit_config")
        return standalone_mlp(asym, coord_dim, out_dim, int(cfg["mlp_hidden"]),
                              float(cfg["omega0"]), float(cfg["kappa"]), int(cfg["mask_seed"]))
    if base is None:
        raise ValueError(f"{kind}: needs a base field checkpoint")
    if int(cfg.get("rank", 0)) < 1:
        raise ValueError(f"fit.rank must be a positive integer, got {cfg.get('rank')!r}")
    for key in ("rank", "mlora_init", "mlora_init_std"):
        if key not in cfg:
            raise KeyError(f"fit config: missing key {key!r}")
    return lora_on_base(kind.startswith("mlora"), asym, base, int(cfg["rank"]),
                        float(cfg["kappa"]), str(cfg["mlora_init"]),
                        float(cfg["mlora_init_std"]), int(cfg["mask_seed"]))
