"""Diffusion transformer over weight tokens.

The backbone follows DiT (Peebles & Xie 2023, ``models.py``): a sinusoidal timestep
embedding through an MLP conditions every block by adaLN-Zero (shift, scale and a gate
for both the attention and MLP branches, regressed from the condition by a zero-initialised
linear layer), so each block starts as the identity.

``TensorTokenDiT`` is the HyperDiffusion-style denoiser: one token per parameter tensor
of the weight layout, each with its own linear projection in and out, plus a learned
token-position embedding. A tensor with more values than the token width ``hidden`` is
split into consecutive chunks of at most ``hidden`` values, one token each: a token
narrower than its values could not carry them, and epsilon-prediction at high noise
(where the noise is nearly the input) needs the whole input. Applied to LoRA layouts it is
the "without layer encoder" ablation (each A and each B matrix one or more tokens).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def layout_slices(layout: list[dict]) -> list[tuple[str, tuple[int, ...], int, int]]:
    """(name, shape, start, end) of each tensor of a flat weight vector, in layout order."""
    out, start = [], 0
    for k, entry in enumerate(layout):
        if "name" not in entry or "shape" not in entry:
            raise ValueError(f"layout entry {k} needs 'name' and 'shape', got {entry}")
        shape = tuple(int(s) for s in entry["shape"])
        if not shape or min(shape) < 1:
            raise ValueError(f"layout entry {entry['name']!r}: bad shape {entry['shape']}")
        size = math.prod(shape)
        out.append((str(entry["name"]), shape, start, start + size))
        start += size
    return out


def layout_size(layout: list[dict]) -> int:
    slices = layout_slices(layout)
    return slices[-1][3] if slices else 0


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class TimestepEmbedder(nn.Module):
    """Sinusoidal embedding of the integer time index, then a 2-layer MLP (DiT)."""

    def __init__(self, hidden: int, freq_dim: int = 256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    @staticmethod
    def sinusoid(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
        args = t.float().unsqueeze(-1) * freqs
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        return F.pad(emb, (0, dim % 2))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.sinusoid(t, self.freq_dim))


class Attention(nn.Module):
    """Multi-head self-attention over [B, N, D] tokens."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden size {dim} must be divisible by the number of heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


def mlp(dim: int, ratio: float) -> nn.Sequential:
    hidden = int(dim * ratio)
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))


class DiTBlock(nn.Module):
    """Pre-norm transformer block with adaLN-Zero conditioning."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = mlp(dim, mlp_ratio)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(c).chunk(6, dim=-1)
        x = x + g1.unsqueeze(1) * self.attn(modulate(self.norm1(x), sh1, sc1))
        return x + g2.unsqueeze(1) * self.mlp(modulate(self.norm2(x), sh2, sc2))


class DiTBackbone(nn.Module):
    """Timestep-conditioned stack of DiT blocks and the adaLN-Zero final norm."""

    def __init__(self, hidden: int, depth: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.t_embed = TimestepEmbedder(hidden)
        self.blocks = nn.ModuleList(DiTBlock(hidden, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, tokens: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        c = self.t_embed(t)
        for block in self.blocks:
            tokens = block(tokens, c)
        shift, scale = self.ada(c).chunk(2, dim=-1)
        return modulate(self.norm(tokens), shift, scale)


def chunk_spans(spans: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    """Each (start, end) span split into consecutive pieces of at most ``size`` values, in order."""
    return [(a, min(a + size, end)) for start, end in spans for a in range(start, end, size)]


class ChunkTokens(nn.Module):
    """Spans of a flat weight vector <-> tokens of width ``hidden``, one per chunk of at most
    ``hidden`` values, each chunk with its own linear map in and out.

    A chunk never has more values than its token, so the map in can be injective. The maps
    out start at zero (DiT zero-initialises the output projection).
    """

    def __init__(self, spans: list[tuple[int, int]], hidden: int):
        super().__init__()
        self.hidden = hidden
        self.chunks = chunk_spans(spans, hidden)
        self.embed_in = nn.ModuleList(nn.Linear(e - s, hidden) for s, e in self.chunks)
        self.embed_out = nn.ModuleList(nn.Linear(hidden, e - s) for s, e in self.chunks)
        for layer in self.embed_out:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Flat weights x [B, P] -> tokens [B, n_chunks, hidden]."""
        if not self.chunks:
            return x.new_zeros(x.shape[0], 0, self.hidden)
        return torch.stack([proj(x[:, s:e]) for proj, (s, e) in zip(self.embed_in, self.chunks)],
                           dim=1)

    def decode(self, tokens: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
        """Tokens [B, n_chunks, hidden] -> (start, values [B, end - start]) of every chunk."""
        return [(s, proj(tokens[:, k])) for k, (proj, (s, _))
                in enumerate(zip(self.embed_out, self.chunks))]


class TensorTokenDiT(nn.Module):
    """epsilon-prediction network with one token per parameter tensor of ``layout`` (per
    chunk of ``hidden`` values for larger tensors)."""

    def __init__(self, layout: list[dict], hidden: int, depth: int, heads: int,
                 mlp_ratio: float = 4.0):
        super().__init__()
        slices = layout_slices(layout)
        if not slices:
            raise ValueError("weight layout is empty")
        self.tokens = ChunkTokens([(start, end) for _, _, start, end in slices], hidden)
        self.pos = nn.Parameter(torch.randn(len(self.tokens.chunks), hidden) * 0.02)
        self.backbone = DiTBackbone(hidden, depth, heads, mlp_ratio)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Input tokens [B, n_chunks, hidden] of flat weights x [B, P], positions included."""
        return self.tokens(x) + self.pos

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        tokens = self.backbone(self.embed(x), t)
        return torch.cat([values for _, values in self.tokens.decode(tokens)], dim=-1)
