"""Modulated neural field: the frozen base model that LoRA / mLoRA adapt.

A mapping network turns a latent z into a style vector; each synthesis layer scales the
input columns of its weight by an affine map of that style (W' = W·diag(s)), normalises
every output row to unit length (demodulation, ε = 1e-8) and applies ReLU. Synthesis
blocks hold two such layers joined by a residual link. Coordinates enter through a
Fourier-feature layer sin(ω0 (W p + b)), the same form as the standalone MLP's first
layer, so ω0 is shared between the two families as in the paper.

Layer order of the synthesis network (used by every adapter): ``0`` input layer
(enc_width → width), then ``1 + 2k`` and ``2 + 2k`` for block ``k``, then the output
layer (width → out_dim, no ReLU).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from nfws.config_files import Section
from nfws.mlora.budget import synthesis_dims

DEMOD_EPS = 1e-8


@dataclass(frozen=True)
class FieldArch(Section):
    """The base field's shape: the ``lora.base`` keys that size it, plus the dataset's
    coordinate and output dimensions and its ``omega0``."""

    SECTION = "lora.base"
    coord_dim: int
    out_dim: int
    d_z: int
    mapping_layers: int
    mapping_width: int
    n_blocks: int
    width: int
    enc_width: int
    omega0: float


def demodulate(weight: torch.Tensor, eps: float = DEMOD_EPS) -> torch.Tensor:
    """Scale each output row of ``weight`` [..., out, in] to unit L2 norm."""
    return weight * torch.rsqrt(weight.pow(2).sum(-1, keepdim=True) + eps)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """x [B, N, in] through per-instance weight [B, out, in] (or shared [out, in]) + bias."""
    if weight.dim() == 2:
        return F.linear(x, weight, bias)
    b = bias if bias.dim() == 2 else bias.expand(weight.shape[0], -1)
    return torch.baddbmm(b.unsqueeze(1), x, weight.transpose(1, 2))


def synthesis(h: torch.Tensor, weights: list, biases: list, n_blocks: int) -> torch.Tensor:
    """Run encoded points through input layer, residual blocks and output layer."""
    if len(weights) != 2 * n_blocks + 2:
        raise ValueError(f"synthesis needs {2 * n_blocks + 2} layers, got {len(weights)}")
    h = F.relu(linear(h, weights[0], biases[0]))
    for k in range(n_blocks):
        a = F.relu(linear(h, weights[1 + 2 * k], biases[1 + 2 * k]))
        a = F.relu(linear(a, weights[2 + 2 * k], biases[2 + 2 * k]))
        h = h + a
    return linear(h, weights[-1], biases[-1])


class FourierFeatures(nn.Module):
    """sin(ω0 (W p + b)) with SIREN's first-layer initialisation (W ~ U(±1/d_in))."""

    def __init__(self, coord_dim: int, width: int, omega0: float):
        super().__init__()
        self.omega0 = float(omega0)
        self.proj = nn.Linear(coord_dim, width)
        with torch.no_grad():
            self.proj.weight.uniform_(-1.0 / coord_dim, 1.0 / coord_dim)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.omega0 * self.proj(points))


class ModulatedLinear(nn.Module):
    """One modulated + demodulated fully connected layer."""

    def __init__(self, d_in: int, d_out: int, style_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(d_out, d_in))
        self.bias = nn.Parameter(torch.zeros(d_out))
        self.affine = nn.Linear(style_dim, d_in)
        with torch.no_grad():  # start near s = 1 so early training sees the plain weight
            self.affine.weight.mul_(0.1)
            self.affine.bias.fill_(1.0)

    def modulated_weight(self, style: torch.Tensor) -> torch.Tensor:
        """demod(W·diag(s)) for style [B, style_dim] → [B, out, in]."""
        s = self.affine(style)
        return demodulate(self.weight.unsqueeze(0) * s.unsqueeze(1))


class ModulatedField(nn.Module):
    """f(p, z): mapping network z → style, modulated synthesis network p → output."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.cfg = FieldArch.pick(cfg).to_dict()
        c = self.cfg
        layers, d = [], c["d_z"]
        for _ in range(c["mapping_layers"]):
            layers += [nn.Linear(d, c["mapping_width"]), nn.LeakyReLU(0.2)]
            d = c["mapping_width"]
        self.mapping = nn.Sequential(*layers)
        self.encoder = FourierFeatures(c["coord_dim"], c["enc_width"], c["omega0"])
        dims = synthesis_dims(c["enc_width"], c["width"], c["n_blocks"], c["out_dim"])
        self.layers = nn.ModuleList(ModulatedLinear(i, o, d) for i, o in dims)

    @property
    def n_blocks(self) -> int:
        return self.cfg["n_blocks"]

    def forward(self, points: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """points [B, N, coord_dim], z [B, d_z] → [B, N, out_dim]."""
        w = self.mapping(z)
        weights = [layer.modulated_weight(w) for layer in self.layers]
        biases = [layer.bias for layer in self.layers]
        return synthesis(self.encoder(points), weights, biases, self.n_blocks)

    @torch.no_grad()
    def folded(self, z: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Weights demod(W·diag(s(z))) [out, in] and biases of every layer for one latent.

        With z fixed the base field is an ordinary residual MLP with these weights; LoRA
        adapters act on them.
        """
        w = self.mapping(z.reshape(1, -1))
        return ([layer.modulated_weight(w)[0].clone() for layer in self.layers],
                [layer.bias.detach().clone() for layer in self.layers])
