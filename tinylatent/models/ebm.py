"""Energy-based model trained with sampled negatives (seed 003): Du & Mordatch 2019,
"Implicit generation and generalization in energy-based models".

p_theta(x) = exp(-E_theta(x)) / Z. The log-likelihood gradient is
-grad E(x+) + E_{x- ~ p_theta}[grad E(x-)]; the model expectation is estimated with
short-run Langevin dynamics (Du & Mordatch, Eq. 2)

    x^k = x^{k-1} - (lambda / 2) grad_x E(x^{k-1}) + omega^k,   omega^k ~ N(0, sigma^2 I),

started from a replay buffer of earlier negatives (Sec. 3.1; 5% of the starts fresh noise),
which makes it persistent contrastive divergence (Tieleman 2008) in continuous space. With
sigma^2 = lambda this is the unadjusted Langevin algorithm whose stationary law tends to p_theta
as lambda -> 0; images use Du & Mordatch's decoupled (larger) step. The loss (Eq. 3, Sec. 3.3)

    L = mean E(x+) - mean E(x-)  +  alpha (mean E(x+)^2 + mean E(x-)^2)

has the contrastive-divergence gradient plus an energy-magnitude regulariser that keeps the
energies (and so the Langevin gradients) from drifting.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import tinylatent as tl
from tinylatent import nn
from tinylatent.tensor import Tensor

from .config import resolve_config

__all__ = ["EBM", "EBMConfig", "grid_log_partition"]


@dataclass(frozen=True)
class EBMConfig:
    in_features: int = 2               # flattened data dimension (2 for the toys, 784 MNIST)
    hidden_features: tuple = (128, 128)
    langevin_steps: int = 20           # K, Langevin steps per update
    step_size: float = 0.01            # lambda: x -= (lambda / 2) grad E
    noise_std: float | None = None     # sigma; None: sqrt(lambda) (the Langevin diffusion)
    grad_clip: float | None = None     # clip each gradient component (Du & Mordatch: 0.01)
    buffer_size: int = 10000           # replay buffer of negatives
    reinit_prob: float = 0.05          # fresh-noise starts per batch (Du & Mordatch, Sec. 3.1)
    alpha: float = 0.1                 # energy-magnitude regulariser weight
    data_low: float = -4.0             # fresh noise ~ U[data_low, data_high]^D; also the
    data_high: float = 4.0             # clamp of images and the grid of the 2-D log Z
    clamp: bool = False                # clamp Langevin iterates to [data_low, data_high]


class EBM(nn.Module):
    """E_theta(x): an MLP with SiLU (smooth, so Langevin gradients are well behaved)."""

    def __init__(self, config: EBMConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = resolve_config(self, EBMConfig, config, overrides)
        if cfg.langevin_steps < 1 or cfg.buffer_size < 1 or cfg.data_high <= cfg.data_low:
            raise ValueError(f"EBM: need langevin_steps, buffer_size >= 1 and data_low < "
                             f"data_high, got {cfg}")
        sizes = (cfg.in_features, *cfg.hidden_features)
        layers = []
        for a, b in zip(sizes, sizes[1:]):
            layers += [nn.Linear(a, b), nn.SiLU()]
        self.net = nn.Sequential(*layers, nn.Linear(sizes[-1], 1))
        self.register_buffer("buffer", self.noise(cfg.buffer_size))

    def noise(self, n: int, generator=None, device=None) -> Tensor:
        """Fresh chain starts: U[data_low, data_high]^D, (n, D)."""
        c = self.config
        return tl.uniform(c.data_low, c.data_high, (n, c.in_features), device=device,
                          generator=generator)

    def energy(self, x: Tensor) -> Tensor:
        """E_theta(x): (B, D) -> (B,)."""
        if x.ndim != 2 or x.shape[1] != self.config.in_features:
            raise ValueError(f"EBM.energy: expected x of shape (B, {self.config.in_features}), "
                             f"got {tuple(x.shape)}")
        return self.net(x).reshape(-1)                                         # (B, 1) -> (B,)

    def langevin(self, x: Tensor, steps: int | None = None, generator=None) -> Tensor:
        """`steps` Langevin updates of x (Du & Mordatch Eq. 2); no graph is kept."""
        c = self.config
        sigma = math.sqrt(c.step_size) if c.noise_std is None else c.noise_std
        x = x.detach()
        for _ in range(c.langevin_steps if steps is None else steps):
            x.requires_grad_(True)
            with tl.enable_grad():
                (g,) = tl.grad(self.energy(x).sum(), x)
            if c.grad_clip is not None:
                g = tl.clamp(g, -c.grad_clip, c.grad_clip)
            with tl.no_grad():
                x = x - (0.5 * c.step_size) * g + sigma * tl.randn(*x.shape, device=x.device,
                                                                   generator=generator)
                if c.clamp:
                    x = tl.clamp(x, c.data_low, c.data_high)
        return x.detach()

    def negative_sample(self, n: int, generator=None) -> Tensor:
        """n negatives: Langevin from replay-buffer entries (a fraction reinit_prob replaced
        by fresh noise), written back to the buffer."""
        c = self.config
        dev = self.buffer.device
        idx = tl.randint(0, c.buffer_size, (n,), device=dev, generator=generator)
        start = self.buffer[idx]
        fresh = tl.rand(n, 1, device=dev, generator=generator) < c.reinit_prob
        start = tl.where(fresh, self.noise(n, generator, dev), start)
        x = self.langevin(start, generator=generator)
        buffer = self.buffer.clone()
        buffer[idx] = x               # (duplicate indices: one of the chains is kept)
        self.buffer = buffer
        return x

    def loss(self, x: Tensor, generator=None):
        x_neg = self.negative_sample(len(x), generator)
        e_pos, e_neg = self.energy(x), self.energy(x_neg)
        cd = e_pos.mean() - e_neg.mean()
        reg = (e_pos ** 2).mean() + (e_neg ** 2).mean()
        loss = cd + self.config.alpha * reg
        return loss, {"loss": loss.detach(), "cd": cd.detach(), "energy_pos":
                      e_pos.mean().detach(), "energy_neg": e_neg.mean().detach()}

    def log_partition(self, n: int = 200) -> float:
        """log Z on an n x n grid over [data_low, data_high]^2 (2-D models only)."""
        c = self.config
        return grid_log_partition(self.energy, (c.data_low, c.data_high), n)

    def log_prob(self, x: Tensor, log_z: float | None = None) -> Tensor:
        """log p(x) = -E(x) - log Z; log Z from the 200 x 200 grid unless given (2-D only)."""
        if log_z is None:
            if self.config.in_features != 2:
                raise ValueError("EBM.log_prob: log Z is only computed (on a grid) for 2-D "
                                 f"models; this one has in_features={self.config.in_features}")
            log_z = self.log_partition()
        return -self.energy(x) - log_z

    def sample(self, n: int, generator=None, steps: int | None = None) -> Tensor:
        """Langevin from fresh noise (default 10 K steps): approximate samples."""
        x = self.noise(n, generator, self.buffer.device)
        return self.langevin(x, 10 * self.config.langevin_steps if steps is None else steps,
                             generator)


def grid_log_partition(energy, bounds: tuple, n: int = 200) -> float:
    """log Z = log sum_cells exp(-E(cell centre)) * cell area on an n x n grid of cell centres
    over [lo, hi]^2 (the midpoint rule; exact as n grows for a density inside the square)."""
    lo, hi = bounds
    h = (hi - lo) / n
    centres = lo + h * (np.arange(n) + 0.5)
    gx, gy = np.meshgrid(centres, centres, indexing="ij")
    pts = tl.tensor(np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32))    # (n*n, 2)
    with tl.no_grad():
        neg_e = -energy(pts).numpy_host().astype(np.float64)
    m = neg_e.max()
    return float(m + np.log(np.exp(neg_e - m).sum()) + 2 * math.log(h))
