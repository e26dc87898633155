"""nf2vec decoder: a radiance field conditioned on an NeRF embedding.

The decoder reads a frequency-encoded 3D point concatenated with a NeRF embedding and
predicts (r, g, b, raw density). Its outputs follow the project's field convention (the
same activations as the NeRFs it learns to imitate): colour = sigmoid, density =
trunc_exp(raw - 1), and points are mapped from the box [-bbox, bbox]^3 to [0, 1]^3 before
encoding (the shared encodings of ``nfws.fields``). The decoder is a field in the sense of
``nfws.render``: ``lambda x: decoder(x, emb)`` renders with the same renderer as the NeRFs.
"""
from __future__ import annotations

import torch
from torch import nn

from nfws.fields.encodings import frequency_encoding, to_unit_cube
from nfws.fields.stacks import trunc_exp


class NF2VecDecoder(nn.Module):
    """(points [B, N, 3], embeddings [B, d]) -> (rgb [B, N, 3], sigma [B, N]).

    Input = [freq(x) (6 n_freqs), embedding] -> 4 hidden Linear+ReLU layers of ``width``;
    skip: input -> Linear+ReLU, added to the output of the 2nd hidden layer; Linear -> 4.
    The first layer and the skip act on a concatenation, so their embedding halves are
    computed once per NeRF and broadcast over its points (same map, fewer FLOPs).
    """

    def __init__(self, d_embed: int = 1024, width: int = 1024, n_freqs: int = 24, bbox: float = 0.7):
        super().__init__()
        if width < 1 or n_freqs < 1 or bbox <= 0:
            raise ValueError(f"nf2vec decoder: width ({width}), n_freqs ({n_freqs}) and bbox "
                             f"({bbox}) must be positive")
        self.n_freqs, self.bbox = n_freqs, bbox
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

    def forward(self, points: torch.Tensor, emb: torch.Tensor):
        feat = frequency_encoding(to_unit_cube(points, self.bbox), self.n_freqs).to(emb.dtype)
        h = torch.relu(self._split_linear(self.first, feat, emb))
        h = torch.relu(self.second(h)) + torch.relu(self._split_linear(self.skip, feat, emb))
        h = torch.relu(self.third(h))
        h = torch.relu(self.fourth(h))
        raw = self.out(h)
        return torch.sigmoid(raw[..., :3]), trunc_exp(raw[..., 3] - 1.0)
