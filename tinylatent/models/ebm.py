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

Replica exchange (optional, `temperatures`): short-run Langevin cannot cross the low-density
gaps between separated modes, so persistent chains stay in the mode they first fell into and
the negatives' share of each mode is set by where the restarts land, not by the model's mode
masses; the CD gradient then cannot correct the mode weights. Parallel tempering (Swendsen &
Wang 1986; Geyer 1991), the fix used for persistent-chain training of RBMs (Desjardins et al.
2010, "Tempered Markov chain Monte Carlo for training of RBMs"; Cho, Raiko & Ilin 2010), runs
one chain per temperature T_r with target p^(1/T_r) (Langevin with grad E / T_r) and after each
step proposes swapping the states of neighbouring temperatures, accepted with probability
min(1, exp((1/T_r - 1/T_{r+1}) (E(x_r) - E(x_{r+1})))), the Metropolis ratio that keeps the
product of the tempered laws invariant. The T = 1 chains are the negatives.
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
    temperatures: tuple = (1.0,)       # replica-exchange ladder, 1 = T_0 < T_1 < ...; (1.0,): off.
                                       # With a ladder, fresh starts go to the hottest replica


class EBM(nn.Module):
    """E_theta(x): an MLP with SiLU (smooth, so Langevin gradients are well behaved)."""

    def __init__(self, config: EBMConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = resolve_config(self, EBMConfig, config, overrides)
        temps = cfg.temperatures
        if cfg.langevin_steps < 1 or cfg.buffer_size < 1 or cfg.data_high <= cfg.data_low or \
                len(temps) < 1 or temps[0] != 1.0 or any(a >= b for a, b in zip(temps, temps[1:])):
            raise ValueError(f"EBM: need langevin_steps, buffer_size >= 1, data_low < data_high "
                             f"and temperatures increasing from 1.0, got {cfg}")
        sizes = (cfg.in_features, *cfg.hidden_features)
        layers = []
        for a, b in zip(sizes, sizes[1:]):
            layers += [nn.Linear(a, b), nn.SiLU()]
        self.net = nn.Sequential(*layers, nn.Linear(sizes[-1], 1))
        self.register_buffer("buffer", self.noise(cfg.buffer_size))
        # the replicas at T_1, T_2, ...: (R - 1, buffer_size, D), entry i tempers buffer entry i
        self.register_buffer("tempered", self.noise((len(temps) - 1) * cfg.buffer_size).reshape(
            len(temps) - 1, cfg.buffer_size, cfg.in_features) if len(temps) > 1 else None)

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
        return self._langevin([x], steps, generator)[0]

    def _langevin(self, xs: list, steps: int | None = None, generator=None) -> list:
        """Langevin on replicas xs[r] (n, D) at temperatures T_r (target p^(1/T_r)), with a
        replica-exchange sweep after every gradient (even pairs on even steps, odd on odd)."""
        c = self.config
        sigma = math.sqrt(c.step_size) if c.noise_std is None else c.noise_std
        betas = [1.0 / t for t in c.temperatures[:len(xs)]]
        n = len(xs[0])
        x = tl.cat([x.detach() for x in xs])                                   # (R n, D)
        for step in range(c.langevin_steps if steps is None else steps):
            x.requires_grad_(True)
            with tl.enable_grad():
                e = self.energy(x)
                (g,) = tl.grad(e.sum(), x)
            if c.grad_clip is not None:
                g = tl.clamp(g, -c.grad_clip, c.grad_clip)
            with tl.no_grad():
                x = x.detach()
                if len(xs) > 1:
                    x, g = self._swap(x, g, e.detach(), betas, step % 2, generator)
                drift = tl.cat([g[r * n:(r + 1) * n] * b for r, b in enumerate(betas)])
                x = x - (0.5 * c.step_size) * drift + sigma * tl.randn(
                    *x.shape, device=x.device, generator=generator)
                if c.clamp:
                    x = tl.clamp(x, c.data_low, c.data_high)
        x = x.detach()
        return [x[r * n:(r + 1) * n] for r in range(len(xs))]

    @staticmethod
    def _swap(x, g, e, betas, parity, generator):
        """Swap the states (and their gradients grad E, which do not depend on T) of the pairs
        (r, r + 1), r = parity, parity + 2, ..., where
        log u < (beta_r - beta_{r+1}) (E_r - E_{r+1}),  u ~ U(0, 1)."""
        n = len(x) // len(betas)
        xs = [x[r * n:(r + 1) * n] for r in range(len(betas))]
        gs = [g[r * n:(r + 1) * n] for r in range(len(betas))]
        es = [e[r * n:(r + 1) * n] for r in range(len(betas))]
        for r in range(parity, len(betas) - 1, 2):
            log_ratio = (betas[r] - betas[r + 1]) * (es[r] - es[r + 1])
            u = tl.rand(n, device=x.device, generator=generator)
            swap = (tl.log(u) < log_ratio).reshape(n, 1)                      # (n,) -> (n, 1)
            xs[r], xs[r + 1] = tl.where(swap, xs[r + 1], xs[r]), tl.where(swap, xs[r], xs[r + 1])
            gs[r], gs[r + 1] = tl.where(swap, gs[r + 1], gs[r]), tl.where(swap, gs[r], gs[r + 1])
        return tl.cat(xs), tl.cat(gs)

    def negative_sample(self, n: int, generator=None) -> Tensor:
        """n negatives: Langevin from replay-buffer entries (a fraction reinit_prob replaced
        by fresh noise, in the hottest replica if tempered), written back to the buffer."""
        c = self.config
        dev = self.buffer.device
        idx = tl.randint(0, c.buffer_size, (n,), device=dev, generator=generator)
        levels = 0 if self.tempered is None else self.tempered.shape[0]
        starts = [self.buffer[idx]] + [self.tempered[r][idx] for r in range(levels)]
        fresh = tl.rand(n, 1, device=dev, generator=generator) < c.reinit_prob
        starts[-1] = tl.where(fresh, self.noise(n, generator, dev), starts[-1])
        xs = self._langevin(starts, generator=generator)
        self.buffer = self._put(self.buffer, idx, xs[0])
        if levels:
            self.tempered = tl.stack([self._put(self.tempered[r], idx, xs[r + 1])
                                      for r in range(levels)])
        return xs[0]

    @staticmethod
    def _put(chains: Tensor, idx: Tensor, x: Tensor) -> Tensor:
        """chains with rows idx replaced by x (duplicate indices: one of the chains is kept)."""
        chains = chains.clone()
        chains[idx] = x
        return chains

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
