"""Single-architecture encoders of Table 5: nf2vec's MLP encoder and a tri-plane transformer.

Both read raw NeRF parameters (a dict of batched tensors named as in
``ArchSpec.param_shapes()``) rather than graphs, and return embeddings [B, d_embed] that
feed the same decoder and classifier as the GMN. Each works on one parameter layout only,
which is the limitation the GMN removes: an input it cannot read raises ValueError.
"""
from __future__ import annotations

import re

import torch
from torch import nn

_MLP_KEY = re.compile(r"^mlp\.(\d+)$")


def mlp_rows(params: dict[str, torch.Tensor], row_width: int) -> torch.Tensor:
    """Stack an MLP's weight matrices as rows of ``row_width`` values: [B, n_rows, row_width].

    nf2vec lays a NeRF's weights out as rows of its hidden width: a matrix [out, in] gives
    its ``out`` rows when in == row_width, else its ``in`` columns when out == row_width.
    """
    keys = sorted((k for k in params if _MLP_KEY.match(k)), key=lambda k: int(_MLP_KEY.match(k)[1]))
    if not keys:
        raise ValueError("nf2vec encoder: no mlp.* parameters in the input")
    rows = []
    for key in keys:
        w = params[key]
        if w.shape[-1] == row_width:
            rows.append(w)
        elif w.shape[-2] == row_width:
            rows.append(w.transpose(-1, -2))
        else:
            raise ValueError(f"nf2vec encoder: parameter {key} of shape {tuple(w.shape[-2:])} has "
                             f"no side of length {row_width} (encoder built for width {row_width})")
    return torch.cat(rows, dim=-2)


class NF2VecMLPEncoder(nn.Module):
    """nf2vec's encoder: per-row Conv1d (kernel 1) + BatchNorm + ReLU stack, projection to
    ``d_embed``, max-pool over rows (so the row count may vary, the row width may not)."""

    def __init__(self, row_width: int = 64, widths=(512, 512, 1024, 1024), d_embed: int = 1024):
        super().__init__()
        self.row_width = row_width
        layers, d = [], row_width
        for w in widths:
            layers += [nn.Conv1d(d, w, 1), nn.BatchNorm1d(w), nn.ReLU()]
            d = w
        layers.append(nn.Conv1d(d, d_embed, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        rows = mlp_rows(params, self.row_width)           # [B, n_rows, row_width]
        return self.net(rows.transpose(1, 2)).amax(-1)    # [B, d_embed]


class TriplaneTransformer(nn.Module):
    """Tri-plane-only encoder in the manner of Cardace et al. (2024); the MLP is ignored.

    Tokens are non-overlapping ``patch`` x ``patch`` patches of each plane (all channels),
    linearly embedded, plus a learned position embedding per (plane, patch) — which ties
    the encoder to one resolution. Planes with fewer channels than ``channels`` are
    zero-padded; any other mismatch raises. Transformer encoder, mean over tokens, Linear.
    """

    def __init__(self, channels: int = 16, resolution: int = 32, patch: int = 4, d_model: int = 128,
                 heads: int = 4, layers: int = 2, d_embed: int = 1024, dropout: float = 0.0):
        super().__init__()
        if resolution % patch:
            raise ValueError(f"tri-plane transformer: patch {patch} does not divide resolution {resolution}")
        self.channels, self.resolution, self.patch = channels, resolution, patch
        n_tokens = 3 * (resolution // patch) ** 2
        self.embed = nn.Linear(channels * patch * patch, d_model)
        self.position = nn.Parameter(torch.randn(n_tokens, d_model) * 0.02)
        block = nn.TransformerEncoderLayer(d_model, heads, 2 * d_model, dropout, batch_first=True)
        self.transformer = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.project = nn.Linear(d_model, d_embed)

    def tokens(self, planes: torch.Tensor) -> torch.Tensor:
        B, three, C, R, R2 = planes.shape
        if three != 3 or R != self.resolution or R2 != self.resolution or C > self.channels:
            raise ValueError(f"tri-plane transformer: built for [3, <= {self.channels}, "
                             f"{self.resolution}, {self.resolution}] planes, got {list(planes.shape[1:])}")
        if C < self.channels:
            planes = torch.cat([planes, planes.new_zeros(B, 3, self.channels - C, R, R)], 2)
        p, n = self.patch, R // self.patch
        patches = planes.reshape(B, 3, self.channels, n, p, n, p).permute(0, 1, 3, 5, 2, 4, 6)
        return patches.reshape(B, 3 * n * n, self.channels * p * p)

    def forward(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        if "triplane" not in params:
            raise ValueError("tri-plane transformer: input has no 'triplane' parameter")
        h = self.embed(self.tokens(params["triplane"])) + self.position
        return self.project(self.norm(self.transformer(h)).mean(1))


def can_encode(encoder_cfg: dict, spec) -> bool:
    """Whether a baseline encoder (config ``{kind, ...}``) can read NeRFs of ``spec`` (an
    ArchSpec); the GMN reads every architecture. Table 5 leaves the other cells empty."""
    kind = encoder_cfg.get("kind", "gmn")
    if kind == "nf2vec_mlp":
        width = encoder_cfg.get("row_width", 64)
        return spec.family == "MLP" and all(width in shape for shape in spec.mlp_shapes())
    if kind == "triplane_transformer":
        return (spec.family == "TRI" and spec.triplane_res == encoder_cfg.get("resolution", 32)
                and spec.triplane_channels <= encoder_cfg.get("channels", 16))
    return kind == "gmn"
