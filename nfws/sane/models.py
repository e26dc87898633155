"""SANE's transformer autoencoder for hash-grid NeRF tokens, with its two heads (report §4.3–4.5).

:class:`SANE` encodes a token sequence (:mod:`nfws.sane.tokens`) to one latent of
``d_latent`` per token (``encode``) and rebuilds the hash and MLP tokens from the latents
(``decode``). The projection head pools the non-[POS] latents into an NT-Xent embedding
(``projection``); the rotation head reads a quaternion off the [POS] latents of two views
(``rotation``).
Architecture: docs/design.md, "SANE model".
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nfws.config_files import Section
from nfws.sane.tokens import TokenLayout


@dataclass(frozen=True)
class ModelConfig(Section):
    """The ``sane.model`` section."""

    SECTION = "sane.model"
    d_model: int
    heads: int
    layers: int
    d_latent: int
    dropout: float
    n_pos: int
    proj_hidden: int
    proj_dim: int
    rot_heads: int

    def check(self, section: str) -> None:
        for key in ("d_model", "heads", "layers", "d_latent", "n_pos", "proj_hidden",
                    "proj_dim", "rot_heads"):
            if int(getattr(self, key)) < 1:
                self.bad(section, key, "must be >= 1")
        if self.d_model % self.heads:
            self.bad(section, "heads", f"must divide d_model {self.d_model}")
        if self.d_latent % self.rot_heads:
            self.bad(section, "rot_heads", f"must divide d_latent {self.d_latent}")
        if not 0 <= self.dropout < 1:
            self.bad(section, "dropout", "must lie in [0, 1)")


def _stack(cfg: ModelConfig, width: int, heads: int, layers: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(width, heads, 4 * width, cfg.dropout, activation="gelu",
                                       batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class AttentionPool(nn.Module):
    """Softmax-weighted average of a token sequence with a learned query."""

    def __init__(self, dim: int):
        super().__init__()
        self.query = nn.Parameter(torch.zeros(dim))
        self.key = nn.Linear(dim, dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        scores = self.key(z) @ self.query / z.shape[-1] ** 0.5                 # [B, C]
        return (scores.softmax(dim=-1)[..., None] * z).sum(dim=1)


class SANE(nn.Module):
    """Autoencoder over ``[hash; mlp; pos]`` token sequences of one :class:`TokenLayout`."""

    def __init__(self, layout: TokenLayout, cfg: ModelConfig):
        super().__init__()
        if layout.n_pos != cfg.n_pos:
            raise ValueError(f"sane.model.n_pos {cfg.n_pos} disagrees with the token layout "
                             f"({layout.n_pos})")
        self.layout, self.cfg = layout, cfg
        d, dz = cfg.d_model, cfg.d_latent
        self.embed_hash = nn.Linear(layout.hash_dim, d)
        self.embed_mlp = nn.Linear(layout.mlp_dim, d)
        self.pos_xyz = nn.Linear(3, d)
        self.pos_index = nn.Embedding(layout.length, d)
        self.encoder = _stack(cfg, d, cfg.heads, cfg.layers)
        self.to_latent = nn.Linear(d, dz)
        self.from_latent = nn.Linear(dz, d)
        self.decoder = _stack(cfg, d, cfg.heads, cfg.layers)
        self.out_hash = nn.Linear(d, layout.hash_dim)
        self.out_mlp = nn.Linear(d, layout.mlp_dim)
        self.pool = AttentionPool(dz)
        self.project = nn.Sequential(nn.Linear(dz, cfg.proj_hidden), nn.ReLU(),
                                     nn.Linear(cfg.proj_hidden, cfg.proj_dim))
        self.rot_index = nn.Embedding(2 * cfg.n_pos, dz)
        self.rot_block = _stack(cfg, dz, cfg.rot_heads, 1)
        self.rot_out = nn.Linear(dz, 4)

    def positional(self, xyz: torch.Tensor) -> torch.Tensor:
        """Encodings [B, C, d_model] for the sequence whose hash points are xyz [B, P, 3]."""
        idx = self.pos_index.weight[None].expand(xyz.shape[0], -1, -1)
        xyz_part = nn.functional.pad(self.pos_xyz(xyz), (0, 0, 0, self.layout.length - xyz.shape[1]))
        return idx + xyz_part

    def encode(self, hash_tok, mlp_tok, xyz) -> torch.Tensor:
        """Latents [B, C, d_latent] of hash [B, P, Dh], MLP [B, M, Dm] tokens at points xyz."""
        b = hash_tok.shape[0]
        pos = hash_tok.new_zeros(b, self.cfg.n_pos, self.cfg.d_model)
        x = torch.cat([self.embed_hash(hash_tok), self.embed_mlp(mlp_tok), pos], dim=1)
        return self.to_latent(self.encoder(x + self.positional(xyz)))

    def decode(self, z, xyz) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstructed hash and MLP tokens from latents."""
        h = self.decoder(self.from_latent(z) + self.positional(xyz))
        p, m = self.layout.n_points, self.layout.n_mlp
        return self.out_hash(h[:, :p]), self.out_mlp(h[:, p:p + m])

    def content(self, z: torch.Tensor) -> torch.Tensor:
        """Attention-pooled embedding [B, d_latent] of the non-[POS] latents."""
        return self.pool(z[:, :-self.cfg.n_pos])

    def projection(self, z: torch.Tensor) -> torch.Tensor:
        """NT-Xent projection [B, proj_dim]."""
        return self.project(self.content(z))

    def rotation(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        """Predicted relative quaternion (unnormalised) [B, 4] taking view a to view b."""
        n = self.cfg.n_pos
        seq = torch.cat([z_a[:, -n:], z_b[:, -n:]], dim=1) + self.rot_index.weight
        return self.rot_out(self.rot_block(seq)[:, 0])
