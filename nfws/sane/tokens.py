"""Hash-grid NeRF weights as a token sequence (SANE report §4.2), and weight augmentations.

Sequence of one NeRF: ``[H; M; P]``: P_h hash tokens (8·L·F values each: the corner
features of one point's cell at every level), M MLP tokens (4·in_max values each: four
rows of one layer) and n_pos [POS] tokens, with a mask of the real weights. Values are
standardised per hash level and per MLP layer with training-NeRF statistics
(:class:`Normaliser`). Augmentations: hidden-neuron permutation, multiplicative noise.
Token layout: docs/design.md, "SANE tokens".
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from nfws.fields.hashgrid import hash_corners
from nfws.fields.spec import OUTPUT_DIM, ArchSpec

GROUP = 4          # neurons per MLP token (report §4.2.2)
CORNERS = 8


@dataclass(frozen=True)
class TokenLayout:
    """Shapes of one NeRF's token sequence for an architecture."""

    spec: ArchSpec
    n_points: int
    n_pos: int

    def __post_init__(self):
        if self.spec.family != "HASH":
            raise ValueError(f"sane.arch: tokens need a HASH architecture, got {self.spec.family}")
        if self.n_points < 1 or self.n_pos < 1:
            raise ValueError(f"sane.tokens: n_points ({self.n_points}) and model.n_pos "
                             f"({self.n_pos}) must be >= 1")

    @property
    def hash_dim(self) -> int:
        return CORNERS * self.spec.hash_levels * self.spec.hash_features

    @property
    def in_max(self) -> int:
        return max(i for _, i in self.spec.mlp_shapes())

    @property
    def mlp_dim(self) -> int:
        return GROUP * self.in_max

    def layer_tokens(self) -> list[int]:
        """MLP tokens per layer: ceil(rows / 4)."""
        return [-(-o // GROUP) for o, _ in self.spec.mlp_shapes()]

    @property
    def n_mlp(self) -> int:
        return sum(self.layer_tokens())

    @property
    def length(self) -> int:
        return self.n_points + self.n_mlp + self.n_pos

    def token_layer(self) -> torch.Tensor:
        """Layer index of every MLP token [M]."""
        return torch.repeat_interleave(torch.arange(len(self.layer_tokens())),
                                       torch.tensor(self.layer_tokens()))

    def mlp_mask(self) -> torch.Tensor:
        """1 where an MLP token element is a real, functional weight: [M, 4 * in_max]."""
        blocks = []
        shapes = self.spec.mlp_shapes()
        for i, ((out, inp), n_tok) in enumerate(zip(shapes, self.layer_tokens())):
            m = torch.zeros(n_tok * GROUP, self.in_max)
            rows = OUTPUT_DIM if i == len(shapes) - 1 else out
            m[:rows, :inp] = 1.0
            blocks.append(m.reshape(n_tok, self.mlp_dim))
        return torch.cat(blocks)


def sample_points(n: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` sets of ``count`` points uniform in [0, 1]^3: [n, count, 3]."""
    return torch.rand(n, count, 3, generator=generator)


def hash_tokens(tables: torch.Tensor, x01: torch.Tensor, spec: ArchSpec) -> torch.Tensor:
    """Hash tokens [B, P, 8 L F] of tables [B, L, T, F] at points x01 [B, P, 3]."""
    b, n_levels, t, n_feat = tables.shape
    index, _ = hash_corners(x01, spec)                                        # [B, P, L, 8]
    offset = (torch.arange(b, device=tables.device).view(b, 1, 1, 1) * (n_levels * t)
              + torch.arange(n_levels, device=tables.device).view(1, 1, n_levels, 1) * t)
    flat = tables.reshape(b * n_levels * t, n_feat)
    feats = flat[(index.to(tables.device) + offset).reshape(-1)]
    return feats.reshape(b, x01.shape[1], n_levels * CORNERS * n_feat)


def mlp_tokens(weights: list[torch.Tensor], layout: TokenLayout) -> torch.Tensor:
    """MLP tokens [B, M, 4 in_max] of layer weights ``mlp.i`` [B, out, in] (masked values zeroed)."""
    out = []
    for w, n_tok in zip(weights, layout.layer_tokens()):
        b, rows, cols = w.shape
        padded = w.new_zeros(b, n_tok * GROUP, layout.in_max)
        padded[:, :rows, :cols] = w
        out.append(padded.reshape(b, n_tok, layout.mlp_dim))
    return torch.cat(out, dim=1) * layout.mlp_mask().to(weights[0])


def permute_hidden(weights: list[torch.Tensor], generator: torch.Generator) -> list[torch.Tensor]:
    """Randomly permute the hidden neurons of each NeRF (rows of ``mlp.i``, columns of
    ``mlp.i+1``, one permutation per hidden layer and NeRF). Bias-free MLPs with
    elementwise activations compute exactly the same function afterwards."""
    out = [w for w in weights]
    for i in range(len(weights) - 1):
        b, width, _ = out[i].shape
        perm = torch.argsort(torch.rand(b, width, generator=generator), dim=1).to(out[i].device)
        out[i] = torch.gather(out[i], 1, perm[:, :, None].expand_as(out[i]))
        out[i + 1] = torch.gather(out[i + 1], 2, perm[:, None, :].expand_as(out[i + 1]))
    return out


def multiplicative_noise(tokens: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """tokens * (1 + sigma * N(0, 1)), elementwise (report §4.4)."""
    if sigma == 0:
        return tokens
    eps = torch.randn(tokens.shape, generator=generator).to(tokens)
    return tokens * (1.0 + sigma * eps)


class Normaliser:
    """Per-hash-level and per-MLP-layer mean / std of the training NeRFs' weights."""

    def __init__(self, hash_mean, hash_std, mlp_mean, mlp_std):
        self.hash_mean, self.hash_std = torch.as_tensor(hash_mean), torch.as_tensor(hash_std)
        self.mlp_mean, self.mlp_std = torch.as_tensor(mlp_mean), torch.as_tensor(mlp_std)

    @classmethod
    def fit(cls, tables: torch.Tensor, weights: list[torch.Tensor], layout: TokenLayout):
        """Statistics over the used entries of each level and the functional weights of each
        layer (the last layer's padding outputs excluded)."""
        sizes = layout.spec.level_sizes()
        h = [tables[:, l, :s].double() for l, s in enumerate(sizes)]
        last = len(weights) - 1
        m = [w[:, :OUTPUT_DIM].double() if i == last else w.double() for i, w in enumerate(weights)]
        std = lambda ts: torch.stack([t.std() for t in ts]).clamp(min=1e-8).float()
        return cls(torch.stack([t.mean() for t in h]).float(), std(h),
                   torch.stack([t.mean() for t in m]).float(), std(m))

    def state(self) -> dict:
        return {"hash_mean": self.hash_mean, "hash_std": self.hash_std,
                "mlp_mean": self.mlp_mean, "mlp_std": self.mlp_std}

    def normalise(self, hash_tok: torch.Tensor, mlp_tok: torch.Tensor, layout: TokenLayout):
        """Standardised tokens; MLP padding stays exactly zero."""
        per_elem = lambda v: v.repeat_interleave(CORNERS * layout.spec.hash_features).to(hash_tok)
        h = (hash_tok - per_elem(self.hash_mean)) / per_elem(self.hash_std)
        layer = layout.token_layer()
        mean = self.mlp_mean[layer][:, None].to(mlp_tok)
        std = self.mlp_std[layer][:, None].to(mlp_tok)
        return h, (mlp_tok - mean) / std * layout.mlp_mask().to(mlp_tok)
