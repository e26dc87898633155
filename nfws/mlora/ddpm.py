"""DDPM training objective and DDIM / DDPM samplers on flattened weight vectors.

Time indices are 0-based: index ``i`` is the paper's step ``t = i + 1``, so
``alpha_bar[0] = 1 - beta_1``. A denoiser is any callable ``eps_model(x_t, i) -> eps``
with ``x_t`` [B, P] and ``i`` a long tensor [B].

Weights are diffused after per-coordinate standardisation (``WeightNormaliser``) so every
coordinate enters the forward process at unit scale, whatever its tensor's magnitude.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class WeightNormaliser:
    """Per-coordinate mean/std of the training weights; stored with the model."""

    mean: torch.Tensor  # [P]
    std: torch.Tensor   # [P]

    @classmethod
    def fit(cls, weights: torch.Tensor, min_std: float = 1e-6) -> "WeightNormaliser":
        """Statistics of ``weights`` [n, P]. Coordinates that never vary (e.g. entries an
        asymmetric mask froze to one value) get std 1 so they map to exactly 0."""
        if weights.ndim != 2 or weights.shape[0] < 2:
            raise ValueError(f"need weights [n >= 2, P] to fit a normaliser, got {tuple(weights.shape)}")
        mean = weights.mean(0)
        std = weights.std(0)
        std = torch.where(std < min_std, torch.ones_like(std), std)
        return cls(mean=mean, std=std)

    def normalise(self, weights: torch.Tensor) -> torch.Tensor:
        return (weights - self.mean.to(weights)) / self.std.to(weights)

    def denormalise(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.std.to(z) + self.mean.to(z)

    def state_dict(self) -> dict:
        return {"mean": self.mean.cpu(), "std": self.std.cpu()}

    @classmethod
    def from_state_dict(cls, state: dict) -> "WeightNormaliser":
        return cls(mean=state["mean"], std=state["std"])


class GaussianDiffusion:
    """Linear-beta DDPM (Ho et al. 2020) with an epsilon-prediction loss."""

    def __init__(self, timesteps: int = 500, beta_start: float = 1e-4, beta_end: float = 2e-2):
        if timesteps < 1:
            raise ValueError(f"diffusion.timesteps must be >= 1, got {timesteps}")
        if not 0 < beta_start <= beta_end < 1:
            raise ValueError(
                f"diffusion.beta_start/beta_end must satisfy 0 < start <= end < 1, "
                f"got {beta_start}, {beta_end}")
        self.timesteps = timesteps
        self.betas = torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)
        self.alpha_bar = torch.cumprod(1.0 - self.betas, dim=0)

    def _ab(self, i: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return self.alpha_bar.to(like.device)[i].to(like.dtype).unsqueeze(-1)

    def q_sample(self, x0: torch.Tensor, i: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Draw x_t ~ q(x_t | x_0) = N(sqrt(ab_t) x0, (1 - ab_t) I) with the given noise."""
        ab = self._ab(i, x0)
        return ab.sqrt() * x0 + (1.0 - ab).sqrt() * noise

    def loss(self, eps_model, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Simplified objective E ||eps - eps_model(x_t, t)||^2, t uniform over all steps."""
        i = torch.randint(0, self.timesteps, (x0.shape[0],), generator=generator,
                          device=generator.device).to(x0.device)
        noise = torch.randn(x0.shape, generator=generator, device=generator.device,
                            dtype=x0.dtype).to(x0.device)
        return torch.mean((noise - eps_model(self.q_sample(x0, i, noise), i)) ** 2)

    def ddim_schedule(self, steps: int) -> list[int]:
        """Descending, evenly spaced time indices from T-1 down to 0."""
        if not 1 <= steps <= self.timesteps:
            raise ValueError(f"sampling steps must be in [1, {self.timesteps}], got {steps}")
        if steps == 1:
            return [self.timesteps - 1]
        grid = torch.linspace(self.timesteps - 1, 0, steps).round().long().tolist()
        return list(dict.fromkeys(grid))

    @torch.no_grad()
    def ddim_sample(self, eps_model, shape: tuple[int, int], steps: int,
                    generator: torch.Generator, eta: float = 0.0,
                    device: torch.device | str = "cpu", x_T: torch.Tensor | None = None):
        """DDIM (Song et al. 2021, eq. 12). eta = 0 is deterministic given x_T; the last
        step jumps to alpha_bar = 1, i.e. returns the model's x0 estimate."""
        x = _noise(shape, generator, device) if x_T is None else x_T.to(device)
        order = self.ddim_schedule(steps)
        for k, i in enumerate(order):
            ab = self.alpha_bar[i].item()
            ab_prev = self.alpha_bar[order[k + 1]].item() if k + 1 < len(order) else 1.0
            eps = eps_model(x, torch.full((shape[0],), i, dtype=torch.long, device=device))
            x0 = (x - (1 - ab) ** 0.5 * eps) / ab**0.5
            sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)) ** 0.5
            x = ab_prev**0.5 * x0 + max(1 - ab_prev - sigma**2, 0.0) ** 0.5 * eps
            if sigma > 0:
                x = x + sigma * _noise(shape, generator, device)
        return x

    @torch.no_grad()
    def ddpm_sample(self, eps_model, shape: tuple[int, int], generator: torch.Generator,
                    device: torch.device | str = "cpu"):
        """Ancestral sampling over all T steps (Ho et al. 2020, Algorithm 2, sigma^2 = beta)."""
        x = _noise(shape, generator, device)
        for i in range(self.timesteps - 1, -1, -1):
            beta = self.betas[i].item()
            ab = self.alpha_bar[i].item()
            eps = eps_model(x, torch.full((shape[0],), i, dtype=torch.long, device=device))
            x = (x - beta / (1 - ab) ** 0.5 * eps) / (1 - beta) ** 0.5
            if i > 0:
                x = x + beta**0.5 * _noise(shape, generator, device)
        return x


def _noise(shape, generator: torch.Generator, device) -> torch.Tensor:
    return torch.randn(shape, generator=generator, device=generator.device).to(device)
