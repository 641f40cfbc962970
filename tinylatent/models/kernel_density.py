"""Gaussian kernel density estimation: the reference a learned 2-D density is compared with
(the toy sets themselves are in `tinylatent.data.toy2d`)."""
from __future__ import annotations

import math

import numpy as np

__all__ = ["KernelDensity"]


class KernelDensity:
    """Gaussian KDE, p(x) = (1/n) sum_i N(x; x_i, h^2 I), with the bandwidth h picked by
    held-out log-likelihood on a grid (a fair reference for a learned 2-D density)."""

    def __init__(self, bandwidth: float | None = None):
        self.bandwidth = bandwidth

    def fit(self, x: np.ndarray, rng: np.random.Generator | None = None) -> "KernelDensity":
        x = np.asarray(x, dtype=np.float64)
        if self.bandwidth is None:
            rng = rng or np.random.default_rng(0)
            perm = rng.permutation(len(x))
            cut = int(0.8 * len(x))
            fit, val = x[perm[:cut]], x[perm[cut:]]
            grid = np.geomspace(0.02, 1.0, 25)
            scores = [KernelDensity(h).fit(fit).score(val) for h in grid]
            self.bandwidth = float(grid[int(np.argmax(scores))])
        self.points = x
        return self

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        h, d = self.bandwidth, x.shape[1]
        out = []
        for chunk in np.array_split(x, max(1, len(x) // 512)):
            sq = ((chunk[:, None, :] - self.points[None, :, :]) ** 2).sum(-1)   # (m, n)
            a = -0.5 * sq / h ** 2
            amax = a.max(axis=1, keepdims=True)
            lse = amax[:, 0] + np.log(np.exp(a - amax).sum(axis=1))
            out.append(lse - math.log(len(self.points)) - d * math.log(h * math.sqrt(2 * math.pi)))
        return np.concatenate(out)

    def score(self, x: np.ndarray) -> float:
        """Mean log-likelihood of x (nats)."""
        return float(self.log_prob(x).mean())
