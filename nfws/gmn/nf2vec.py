"""nf2vec decoder: a radiance field conditioned on an NeRF embedding.

The decoder reads a frequency-encoded 3D point concatenated with a NeRF embedding and
predicts (r, g, b, raw density). Its outputs follow the project's field convention (the
same activations as the NeRFs it learns to imitate): colour = sigmoid, density =
trunc_exp(raw - 1), and points are mapped from the box [-bbox, bbox]^3 to [0, 1]^3 before
encoding (the shared encodings of ``nfws.fields``). The decoder is a field in the sense of
``nfws.render``: ``lambda x: decoder(x, emb)`` renders with the same renderer as the NeRFs.

``embedding_norm: batch`` has the decoder read each training batch's embeddings standardised
within each architecture (:func:`batch_standardise`), so that it can tell the NeRFs of one
architecture apart. The decoder serves only to train the encoder; the embeddings the tables
read are the encoder's own.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch_geometric.utils import scatter

from nfws.fields.encodings import frequency_encoding, to_unit_cube
from nfws.fields.stacks import trunc_exp


#: How the decoder sees the embeddings: as given (the authors), or standardised over the batch.
EMBEDDING_NORMS = ("none", "batch")


def batch_standardise(emb: torch.Tensor, groups: Sequence, eps: float = 1e-12) -> torch.Tensor:
    """Embeddings ``emb`` [B, d] minus the batch mean of their group (``groups[i]``: item
    i's architecture), each column over its pooled within-group standard deviation (biased;
    a column constant within every group, an item alone in its group included, comes out
    zero). Architectures differ by offsets far larger than NeRFs of one architecture differ;
    the groups keep those offsets out of the scale."""
    if len(groups) != emb.shape[0]:
        raise ValueError(f"nf2vec decoder: {len(groups)} groups for {emb.shape[0]} embeddings")
    labels = {g: i for i, g in enumerate(dict.fromkeys(groups))}
    index = torch.as_tensor([labels[g] for g in groups], device=emb.device)
    centred = emb - scatter(emb, index, dim=0, reduce="mean")[index]
    return centred / (centred.pow(2).mean(0) + eps).sqrt()


class NF2VecDecoder(nn.Module):
    """(points [B, N, 3], embeddings [B, d]) -> (rgb [B, N, 3], sigma [B, N]).

    Input = [freq(x) (6 n_freqs), embedding] -> 4 hidden Linear+ReLU layers of ``width``;
    skip: input -> Linear+ReLU, added to the output of the 2nd hidden layer; Linear -> 4.
    The first layer and the skip act on a concatenation, so their embedding halves are
    computed once per NeRF and broadcast over its points (same map, fewer FLOPs).
    ``embedding_norm``: what :meth:`codes` gives the decoder to read: the embeddings as
    given (``none``) or standardised over the batch (``batch``, :func:`batch_standardise`).
    """

    def __init__(self, d_embed: int = 1024, width: int = 1024, n_freqs: int = 24, bbox: float = 0.7,
                 embedding_norm: str = "none"):
        super().__init__()
        if width < 1 or n_freqs < 1 or bbox <= 0:
            raise ValueError(f"nf2vec decoder: width ({width}), n_freqs ({n_freqs}) and bbox "
                             f"({bbox}) must be positive")
        if embedding_norm not in EMBEDDING_NORMS:
            raise ValueError(f"nf2vec decoder: embedding_norm must be one of {EMBEDDING_NORMS}, "
                             f"got {embedding_norm!r}")
        self.n_freqs, self.bbox, self.embedding_norm = n_freqs, bbox, embedding_norm
        d_in = 6 * n_freqs + d_embed
        self.d_point = 6 * n_freqs
        self.first = nn.Linear(d_in, width)
        self.second = nn.Linear(width, width)
        self.skip = nn.Linear(d_in, width)
        self.third = nn.Linear(width, width)
        self.fourth = nn.Linear(width, width)
        self.out = nn.Linear(width, 4)

    def _split_linear(self, layer: nn.Linear, point_feat, emb):
        w_point, w_emb = layer.weight[:, :self.d_point], layer.weight[:, self.d_point:]
        return point_feat @ w_point.T + (emb @ w_emb.T + layer.bias)[:, None, :]

    def codes(self, emb: torch.Tensor, groups: Sequence) -> torch.Tensor:
        """What the decoder reads for a batch of embeddings [B, d] whose items belong to
        ``groups`` (their architectures): the embeddings, or their standardised form."""
        return emb if self.embedding_norm == "none" else batch_standardise(emb, groups)

    def forward(self, points: torch.Tensor, emb: torch.Tensor):
        feat = frequency_encoding(to_unit_cube(points, self.bbox), self.n_freqs).to(emb.dtype)
        h = torch.relu(self._split_linear(self.first, feat, emb))
        h = torch.relu(self.second(h)) + torch.relu(self._split_linear(self.skip, feat, emb))
        h = torch.relu(self.third(h))
        h = torch.relu(self.fourth(h))
        raw = self.out(h)
        return torch.sigmoid(raw[..., :3]), trunc_exp(raw[..., 3] - 1.0)
