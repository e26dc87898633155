"""B neural fields of one architecture evaluated together with stacked parameters.

A shard of NeRFs is trained, rendered and exported as one :class:`FieldStack`: every
parameter tensor of :meth:`ArchSpec.param_shapes` gets a leading field axis, and each MLP
layer is one ``torch.bmm`` over ``[B, N, in]``. A single NeRF is simply B = 1. Per point it
computes what the reference code (on tiny-cuda-nn) computes: x in [-bbox, bbox]^3 to
rgb = sigmoid(raw[0:3]) and sigma = trunc_exp(raw[3] - 1), zero outside the box.
The field step by step: docs/recipes.md, "The field, per point".
"""
from __future__ import annotations

import math
import zlib

import numpy as np
import torch

from nfws.fields.encodings import frequency_encoding, to_unit_cube, triplane_features
from nfws.fields.hashgrid import hash_encoding
from nfws.fields.spec import ArchSpec

#: tiny-cuda-nn's hash-table initialisation range.
HASH_INIT = 1e-4
#: Standard deviation of the reference code's tri-plane initialisation.
TRIPLANE_INIT_STD = 1e-3
#: SIREN's first-layer frequency, folded into tiny-cuda-nn's first-layer init for Sine.
SIREN_FIRST_OMEGA = 30.0


class TruncExp(torch.autograd.Function):
    """exp in the forward pass; backward uses exp(min(x, 15)) so large densities cannot
    blow up gradients (Instant-NGP / nerfacc). Computed in float32 like the reference."""

    @staticmethod
    def forward(ctx, x):
        x = x.float()
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.exp(x.clamp(max=15.0))


def trunc_exp(x: torch.Tensor) -> torch.Tensor:
    return TruncExp.apply(x)


def param_key(name: str) -> str:
    """ParameterDict key of a spec parameter name (``mlp.0`` -> ``mlp_0``)."""
    return name.replace(".", "_")


class FieldStack(torch.nn.Module):
    """B neural fields of one ArchSpec with stacked parameters."""

    def __init__(self, spec: ArchSpec, tensors: dict[str, torch.Tensor]):
        super().__init__()
        shapes = spec.param_shapes()
        missing, extra = sorted(set(shapes) - set(tensors)), sorted(set(tensors) - set(shapes))
        if missing or extra:
            raise ValueError(f"architecture {spec.name!r}: parameters missing {missing}, "
                             f"unexpected {extra}")
        sizes = {name: t.shape[0] for name, t in tensors.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"architecture {spec.name!r}: parameters disagree on the number "
                             f"of fields {sizes}")
        for name, shape in shapes.items():
            if tuple(tensors[name].shape[1:]) != shape:
                raise ValueError(f"architecture {spec.name!r}: parameter {name!r} has shape "
                                 f"{tuple(tensors[name].shape[1:])} per field, expected {shape}")
        self.spec = spec
        self.n = next(iter(sizes.values()))
        self.params = torch.nn.ParameterDict(
            {param_key(name): torch.nn.Parameter(tensors[name].contiguous()) for name in shapes})
        self._mlp_keys = [param_key(f"mlp.{i}") for i in range(len(spec.mlp_shapes()))]

    # ----- forward ------------------------------------------------------------------
    def encode(self, x01: torch.Tensor) -> list[torch.Tensor]:
        """Encoding blocks ``[B, N, w_i]`` in MLP input order (before the 1.0 padding).

        Kept as separate blocks so the first layer reads each with its own column slice
        instead of paying for a concatenated copy."""
        spec = self.spec
        if spec.family == "MLP":
            return [frequency_encoding(x01, spec.n_freqs)]
        if spec.family == "TRI":
            return [frequency_encoding(x01, spec.n_freqs),
                    triplane_features(self.params["triplane"], x01)]
        return [hash_encoding(self.params["hash"], x01, spec)]

    def mlp(self, feats: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        """Batched bias-free MLP -> ``[B, N, 16]``.

        ``feats``: the encoding ``[B, N, spec.encoding_dim]`` (before padding), or its
        blocks in column order as returned by :meth:`encode`."""
        blocks = [feats] if isinstance(feats, torch.Tensor) else feats
        weights = [self.params[k] for k in self._mlp_keys]
        first, col, h = weights[0], 0, None
        if first.shape[-1] > self.spec.encoding_dim:
            # padded inputs are the constant 1.0: their weights sum to a bias
            h = first[:, :, self.spec.encoding_dim:].sum(dim=-1).unsqueeze(1)
        for block in blocks:
            w = first[:, :, col:col + block.shape[-1]].transpose(1, 2)
            h = torch.bmm(block, w) if h is None else torch.baddbmm(h, block, w)
            col += block.shape[-1]
        for w in weights[1:]:
            # relu in place is safe: bmm keeps its inputs, not its output, for backward
            h = torch.bmm(torch.sin(h) if self.spec.activation == "sine" else torch.relu_(h),
                          w.transpose(1, 2))
        return h

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """MLP outputs ``[B, N, 16]`` before activations for world points ``x [B, N, 3]``."""
        self._check_points(x)
        return self.mlp(self.encode(to_unit_cube(x, self.spec.bbox)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """rgb ``[B, N, 3]`` in (0, 1) and density ``[B, N]`` >= 0 at world points ``x``."""
        self._check_points(x)
        x01 = to_unit_cube(x, self.spec.bbox)
        raw = self.mlp(self.encode(x01))
        inside = ((x01 > 0) & (x01 < 1)).all(dim=-1)
        sigma = trunc_exp(raw[..., 3] - 1.0) * inside
        return torch.sigmoid(raw[..., :3]), sigma

    def _check_points(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[0] != self.n or x.shape[2] != 3:
            raise ValueError(f"architecture {self.spec.name!r}: points must be [{self.n}, N, 3], "
                             f"got {tuple(x.shape)}")

    # ----- export / import ----------------------------------------------------------
    def state_arrays(self) -> dict[str, np.ndarray]:
        """Parameters as float32 arrays ``[B, *shape]`` named as in ``spec.param_shapes()``."""
        return {name: self.params[param_key(name)].detach().float().cpu().numpy()
                for name in self.spec.param_shapes()}

    @classmethod
    def from_arrays(cls, spec: ArchSpec, arrays: dict[str, np.ndarray],
                    device: str | torch.device = "cpu") -> "FieldStack":
        """Rebuild a stack from :meth:`state_arrays` output (e.g. a NeRF shard's arrays).

        The arrays are copied; non-finite values are rejected with the parameter's name."""
        tensors = {}
        for name, a in arrays.items():
            a = np.asarray(a, dtype=np.float32)
            if not np.isfinite(a).all():
                raise ValueError(f"architecture {spec.name!r}: parameter {name!r} contains "
                                 f"{int((~np.isfinite(a)).sum())} non-finite values")
            tensors[name] = torch.tensor(a, device=device)
        return cls(spec, tensors)


def init_params(spec: ArchSpec, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """tiny-cuda-nn-like initial parameters for n fields, drawn on the CPU from ``generator``.

    MLP: Xavier-uniform U(+-sqrt(6 / (fan_in + fan_out))) for ReLU; for Sine the first layer
    U(+-30 / fan_in) and later layers U(+-sqrt(6 / fan_in)). Hash tables U(+-1e-4) on each
    level's used entries, zero elsewhere. Tri-planes N(0, 1e-3^2) as in the reference code.
    """
    def uniform(shape, bound):
        return (torch.rand((n, *shape), generator=generator) * 2.0 - 1.0) * bound

    out: dict[str, torch.Tensor] = {}
    for name, shape in spec.param_shapes().items():
        if name == "triplane":
            out[name] = torch.randn((n, *shape), generator=generator) * TRIPLANE_INIT_STD
        elif name == "hash":
            table = uniform(shape, HASH_INIT)
            for level, size in enumerate(spec.level_sizes()):
                table[:, level, size:] = 0.0
            out[name] = table
        else:
            fan_out, fan_in = shape
            if spec.activation == "sine":
                bound = SIREN_FIRST_OMEGA / fan_in if name == "mlp.0" else math.sqrt(6.0 / fan_in)
            else:
                bound = math.sqrt(6.0 / (fan_in + fan_out))
            out[name] = uniform(shape, bound)
    return out


def make_stack(spec: ArchSpec, n: int, generator: torch.Generator,
               device: str | torch.device = "cpu") -> FieldStack:
    """A freshly initialised stack of n fields; draws come from ``generator`` on the CPU so a
    seed gives the same fields on every device."""
    if n < 1:
        raise ValueError(f"architecture {spec.name!r}: a stack needs n >= 1 fields, got {n}")
    tensors = {k: v.to(device) for k, v in init_params(spec, n, generator).items()}
    return FieldStack(spec, tensors)


#: How the NeRFs of a shard start (``nerf.fit.init``).
INIT_MODES = ("shared", "per_nerf")


def keyed_generator(seed: int, *names: str) -> torch.Generator:
    """A CPU generator keyed on ``seed`` and names (architecture, object ids), so a draw
    depends on what it is for, never on list order or shard layout."""
    words = np.random.SeedSequence([seed, *(zlib.crc32(n.encode()) for n in names)])
    return torch.Generator().manual_seed(int(words.generate_state(1, np.uint64)[0]))


def initial_stack(spec: ArchSpec, object_ids, init: str, seed: int,
                  device: str | torch.device = "cpu") -> FieldStack:
    """The starting fields of a shard of NeRFs, one per object id.

    ``shared``: every NeRF of the architecture starts from one draw keyed on (seed,
    architecture). This is what the reference code gets from tiny-cuda-nn, whose modules
    draw their parameters from a fixed default seed (1337), and it keeps the trained
    weights of different objects in one frame. ``per_nerf``: each NeRF from its own draw
    keyed on (seed, architecture, object id). Either way a NeRF's start does not depend on
    the shard or the slot it was trained in, so slot position cannot leak into weights.
    """
    if init not in INIT_MODES:
        raise ValueError(f"nerf.fit.init: must be one of {list(INIT_MODES)}, got {init!r}")
    n = len(object_ids)
    if n < 1:
        raise ValueError(f"architecture {spec.name!r}: a shard needs at least one object id")
    if init == "shared":
        one = init_params(spec, 1, keyed_generator(seed, spec.name))
        tensors = {k: v.expand(n, *v.shape[1:]).clone() for k, v in one.items()}
    else:
        draws = [init_params(spec, 1, keyed_generator(seed, spec.name, oid)) for oid in object_ids]
        tensors = {k: torch.cat([d[k] for d in draws]) for k in draws[0]}
    return FieldStack(spec, {k: v.to(device) for k, v in tensors.items()})


def select(stack: FieldStack, idx) -> FieldStack:
    """A new stack holding copies of fields ``idx`` (int, sequence, slice, bool or long tensor)."""
    if isinstance(idx, int):
        idx = [idx]
    if not isinstance(idx, slice):
        idx = torch.as_tensor(idx, device=next(stack.parameters()).device)
    tensors = {name: stack.params[param_key(name)].detach()[idx].clone()
               for name in stack.spec.param_shapes()}
    return FieldStack(stack.spec, tensors)
