"""nf2vec decoder: a radiance field conditioned on an embedding, and its volume renderer.

The decoder reads a frequency-encoded 3D point concatenated with a NeRF embedding and
predicts (r, g, b, raw density). Its outputs follow the project's field convention (the
same activations as the NeRFs it learns to imitate): colour = sigmoid, density =
trunc_exp(raw - 1), and points are mapped from the box [-bbox, bbox]^3 to [0, 1]^3 before
encoding. Rendering uses stratified samples inside the box and nerfacc's volume rendering,
which runs on CPU and GPU alike.
"""
from __future__ import annotations

import torch
from nerfacc.volrend import accumulate_along_rays, render_weight_from_density
from torch import nn


class _TruncExp(torch.autograd.Function):
    """exp with its gradient clamped at exp(15), the usual guard for density activations."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.exp(x.clamp(max=15.0))


def trunc_exp(x: torch.Tensor) -> torch.Tensor:
    return _TruncExp.apply(x)


def frequency_encoding(x01: torch.Tensor, n_freqs: int) -> torch.Tensor:
    """[..., 3] points in [0, 1] -> [..., 6 n_freqs]; column d*2F + 2k + {0: sin, 1: cos}
    of 2^k pi x_d (tiny-cuda-nn's order)."""
    freqs = (2.0 ** torch.arange(n_freqs, device=x01.device, dtype=x01.dtype)) * torch.pi
    angles = x01[..., :, None] * freqs                        # [..., 3, F]
    enc = torch.stack([torch.sin(angles), torch.cos(angles)], -1)  # [..., 3, F, 2]
    return enc.flatten(-3)


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
        feat = frequency_encoding((points + self.bbox) / (2 * self.bbox), self.n_freqs)
        h = torch.relu(self._split_linear(self.first, feat, emb))
        h = torch.relu(self.second(h)) + torch.relu(self._split_linear(self.skip, feat, emb))
        h = torch.relu(self.third(h))
        h = torch.relu(self.fourth(h))
        raw = self.out(h)
        return torch.sigmoid(raw[..., :3]), trunc_exp(raw[..., 3] - 1.0)


def box_interval(origins: torch.Tensor, dirs: torch.Tensor, bbox: float):
    """Entry and exit distances of rays through [-bbox, bbox]^3 (slab test).

    Rays that miss the box get near == far, i.e. an empty interval (nothing rendered).
    """
    safe = torch.where(dirs.abs() < 1e-12, torch.full_like(dirs, 1e-12), dirs)
    t0, t1 = (-bbox - origins) / safe, (bbox - origins) / safe
    near = torch.minimum(t0, t1).amax(-1).clamp_min(0.0)
    far = torch.maximum(t0, t1).amin(-1)
    return near, torch.maximum(far, near)


def render_rays(field, origins: torch.Tensor, dirs: torch.Tensor, n_samples: int, bbox: float,
                generator: torch.Generator | None = None):
    """Volume-render ``field`` (points [B, N, 3] -> (rgb [B, N, 3], sigma [B, N])) along rays.

    origins, dirs: [B, R, 3]. ``n_samples`` equal bins split each ray's segment inside the
    box; one point per bin, uniformly jittered when a generator is given (stratified
    sampling), at the bin centre otherwise. Returns rgb [B, R, 3] over a black background
    and opacity [B, R].
    """
    B, R, _ = origins.shape
    near, far = box_interval(origins, dirs, bbox)                       # [B, R]
    steps = torch.linspace(0.0, 1.0, n_samples + 1, device=origins.device, dtype=origins.dtype)
    edges = near[..., None] + (far - near)[..., None] * steps            # [B, R, S+1]
    starts, ends = edges[..., :-1], edges[..., 1:]
    if generator is None:
        u = torch.full_like(starts, 0.5)
    else:
        u = torch.rand(starts.shape, generator=generator, device=generator.device).to(starts)
    t = starts + u * (ends - starts)
    points = origins[..., None, :] + t[..., None] * dirs[..., None, :]  # [B, R, S, 3]
    rgb, sigma = field(points.reshape(B, R * n_samples, 3))
    weights, _, _ = render_weight_from_density(
        starts.reshape(B * R, n_samples), ends.reshape(B * R, n_samples),
        sigma.reshape(B * R, n_samples))
    colour = accumulate_along_rays(weights, rgb.reshape(B * R, n_samples, 3))
    return colour.reshape(B, R, 3), weights.sum(-1).reshape(B, R)
