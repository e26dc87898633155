"""Diffusion transformer with the hierarchical LoRA layer encoder (Yang et al. 2026, §3.5).

``HierarchicalLoRADiT`` turns each adapted layer's r rank pairs (row i of A, column i of
B) into one layer token of width ``hidden``, runs the DiT backbone over the layer tokens
and decodes each back to its layer's slice of the flat weight vector. Other tensors are
tokens of their own, chunked as in ``TensorTokenDiT``. A ``hidden`` narrower than a
layer's r·(d_in + d_out) values is refused. Factors come from ``attrs['layout']``.
Design: docs/trackb.md, "How the layer encoder works"; layout: docs/formats.md,
"Instance-weight shards", "The layout".
"""
from __future__ import annotations

import torch
import torch.nn as nn

from nfws.mlora.dit import Attention, ChunkTokens, DiTBackbone, layout_slices, mlp


def _role(entry: dict) -> str | None:
    role = str(entry.get("role", entry.get("kind", ""))).lower()
    return {"a": "A", "lora_a": "A", "b": "B", "lora_b": "B"}.get(role)


def lora_structure(layout: list[dict]):
    """Split a layout into LoRA layers and other tensors.

    Returns (layers, others): layers = list of dicts with the factors' names, rank, d_in,
    d_out and the (start, end) slices of A and B; others = list of (start, end) of the
    remaining tensors.
    """
    slices = layout_slices(layout)
    a_list, b_list, others = [], [], []
    for entry, (name, shape, start, end) in zip(layout, slices):
        role = _role(entry)
        if role is None:
            others.append((start, end))
        elif len(shape) != 2:
            raise ValueError(f"layout entry {name!r}: LoRA factor must be 2-D, got shape {shape}")
        else:
            (a_list if role == "A" else b_list).append((name, shape, start, end))
    if not a_list or len(a_list) != len(b_list):
        raise ValueError(f"layout has {len(a_list)} LoRA A and {len(b_list)} B factors; "
                         "need equal, non-zero counts")
    layers = []
    for (an, ash, a0, a1), (bn, bsh, b0, b1) in _pairs(layout, a_list, b_list):
        if ash[0] != bsh[1]:
            raise ValueError(f"layout: A {an!r} {ash} and B {bn!r} {bsh} disagree on the rank "
                             "(expected A [r, d_in], B [d_out, r])")
        layers.append({"factors": (an, bn), "rank": ash[0], "d_in": ash[1], "d_out": bsh[0],
                       "a": (a0, a1), "b": (b0, b1)})
    return layers, others


def _pairs(layout: list[dict], a_list: list, b_list: list) -> list:
    """(A, B) per layer: by the entries' ``layer`` index when they all carry one, else in
    order (the k-th A with the k-th B)."""
    layer_of = {str(e["name"]): e["layer"] for e in layout if "layer" in e}
    if not all(f[0] in layer_of for f in a_list + b_list):
        return list(zip(a_list, b_list))
    by_layer = {}
    for factor in a_list + b_list:
        by_layer.setdefault(layer_of[factor[0]], []).append(factor)
    pairs = []
    for layer, factors in by_layer.items():
        a = [f for f in factors if f in a_list]
        b = [f for f in factors if f in b_list]
        if len(a) != 1 or len(b) != 1:
            raise ValueError(f"layout layer {layer}: {len(a)} A and {len(b)} B factors; "
                             "need exactly one of each")
        pairs.append((a[0], b[0]))
    return pairs


def check_width(layers: list[dict], hidden: int) -> None:
    """Refuse a ``hidden`` narrower than some layer's r·(d_in + d_out) values (see the
    module docstring for why)."""
    needs = [l["rank"] * (l["d_in"] + l["d_out"]) for l in layers]
    for l, need in zip(layers, needs):
        if hidden < need:
            raise ValueError(
                f"diffusion.model.hidden = {hidden} is narrower than LoRA layer "
                f"{l['factors'][0]}/{l['factors'][1]} (rank {l['rank']}, d_in {l['d_in']}, "
                f"d_out {l['d_out']}), whose token needs r·(d_in + d_out) = {need} values: a "
                "denoiser narrower than its tokens cannot represent the noise at high noise "
                "levels, and its samples diverge. Set diffusion.model.hidden to at least "
                f"{max(needs)} (a multiple of every layer's rank and of diffusion.model.heads)")


def rank_heads(width: int, rank: int) -> int:
    """Attention heads over the rank tokens: r when r divides the token width, else the
    largest head count below r that does."""
    return max(h for h in range(1, rank + 1) if width % h == 0)


class LoRALayerEncoder(nn.Module):
    """r rank-pair tokens of one layer -> one layer token of width ``hidden``.

    Each pair is projected to width w = hidden / r and gets the rank-index encoding; one
    pre-LayerNorm block (self-attention over the r tokens with ``rank_heads`` heads, then an
    MLP, both residual) mixes them; the r tokens are concatenated in rank order.
    Concatenation keeps every pair (pooling would keep only a symmetric summary of them), so
    the map can be injective when w >= d_in + d_out.
    """

    def __init__(self, rank: int, d_in: int, d_out: int, hidden: int,
                 rank_encoding: bool = True, mlp_ratio: float = 4.0):
        super().__init__()
        if hidden % rank:
            raise ValueError(f"diffusion.model.hidden = {hidden} is not a multiple of the LoRA "
                             f"rank {rank}: the layer token concatenates {rank} rank tokens of "
                             "equal width")
        width = hidden // rank
        self.proj = nn.Linear(d_in + d_out, width)
        self.rank_pos = nn.Parameter(torch.randn(rank, width) * 0.02) if rank_encoding else None
        self.norm1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads=rank_heads(width, rank))
        self.norm2 = nn.LayerNorm(width)
        self.mlp = mlp(width, mlp_ratio)

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        """Pairs [B, r, d_in + d_out] -> layer token [B, hidden] (rank tokens side by side)."""
        tok = self.proj(pairs)
        if self.rank_pos is not None:
            tok = tok + self.rank_pos
        tok = tok + self.attn(self.norm1(tok))
        tok = tok + self.mlp(self.norm2(tok))
        return tok.flatten(1)


class HierarchicalLoRADiT(nn.Module):
    """epsilon-prediction network over flat LoRA weight vectors of ``layout``."""

    def __init__(self, layout: list[dict], hidden: int, depth: int, heads: int,
                 mlp_ratio: float = 4.0, rank_encoding: bool = True):
        super().__init__()
        self.layers, others = lora_structure(layout)
        check_width(self.layers, hidden)
        self.encoders = nn.ModuleList(
            LoRALayerEncoder(l["rank"], l["d_in"], l["d_out"], hidden, rank_encoding, mlp_ratio)
            for l in self.layers)
        self.others = ChunkTokens(others, hidden)
        self.layer_pos = nn.Parameter(
            torch.randn(len(self.layers) + len(self.others.chunks), hidden) * 0.02)
        self.backbone = DiTBackbone(hidden, depth, heads, mlp_ratio)
        self.decoders = nn.ModuleList(
            nn.Linear(hidden, l["rank"] * (l["d_in"] + l["d_out"])) for l in self.layers)
        for layer in self.decoders:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def pairs(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Rank-pair tokens [B, r, d_in + d_out] of layer ``k`` from flat weights x [B, P]."""
        l = self.layers[k]
        a = x[:, l["a"][0]:l["a"][1]].reshape(-1, l["rank"], l["d_in"])
        b = x[:, l["b"][0]:l["b"][1]].reshape(-1, l["d_out"], l["rank"])
        return torch.cat([a, b.transpose(1, 2)], dim=-1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Layer tokens [B, L, hidden] before the layer-index encoding."""
        return torch.stack([enc(self.pairs(x, k)) for k, enc in enumerate(self.encoders)], dim=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        tokens = torch.cat([self.encode(x), self.others(x)], dim=1) + self.layer_pos
        tokens = self.backbone(tokens, t)
        pieces = []
        for k, (l, dec) in enumerate(zip(self.layers, self.decoders)):
            out = dec(tokens[:, k]).reshape(-1, l["rank"], l["d_in"] + l["d_out"])
            pieces.append((l["a"][0], out[..., :l["d_in"]].reshape(x.shape[0], -1)))
            pieces.append((l["b"][0], out[..., l["d_in"]:].transpose(1, 2).reshape(x.shape[0], -1)))
        pieces += self.others.decode(tokens[:, len(self.layers):])
        return torch.cat([p for _, p in sorted(pieces, key=lambda item: item[0])], dim=-1)
