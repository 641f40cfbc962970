"""Normalizing-flow transforms on vectors: the contract, planar flows, affine coupling,
permutations and the masked autoregressive (MAF) layer.

The contract (as in nflows, `transforms/base.py`): every transform maps data towards noise,

    forward(x) -> (z, logabsdet)     logabsdet = log|det dz/dx|, one value per example (B,)
    inverse(z) -> (x, logabsdet)     logabsdet = log|det dx/dz| = -(forward's at x)

so that a flow's density is the change of variables (seed 001)

    log p(x) = log p_Z(f(x)) + log|det J_f(x)|.

Image transforms (ActNorm, invertible 1x1 convolution, squeeze, multi-scale) are in
`flow_image_transforms.py`; assembled models in `flows.py`.
"""
from __future__ import annotations

import math

import numpy as np

import tinylatent as tl
from tinylatent import nn
from tinylatent.tensor import Tensor

__all__ = ["Transform", "CompositeTransform", "InverseTransform", "PlanarFlow",
           "planar_transform", "planar_inverse", "AffineCoupling", "checkerboard_mask",
           "channel_mask", "alternating_mask", "Permutation", "ReversePermutation",
           "RandomPermutation", "MaskedAffineAutoregressive", "sum_except_batch"]


def sum_except_batch(x: Tensor) -> Tensor:
    """Sum over every axis but the first: (B, ...) -> (B,)."""
    return x.reshape(x.shape[0], -1).sum(axis=1)


class Transform(nn.Module):
    """Base class: an invertible map with a tractable log-determinant."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} has no inverse")

    def output_shape(self, shape: tuple) -> tuple:
        """Shape of one example after the transform (only Squeeze-like ones change it)."""
        return shape


class CompositeTransform(Transform):
    """f = f_K o ... o f_1;  log|det J_f| = sum_k log|det J_{f_k}| (chain rule)."""

    def __init__(self, transforms):
        super().__init__()
        self.transforms = nn.ModuleList(list(transforms))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        total = tl.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for t in self.transforms:
            x, logabsdet = t(x)
            total = total + logabsdet
        return x, total

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        total = tl.zeros(z.shape[0], dtype=z.dtype, device=z.device)
        for t in reversed(list(self.transforms)):
            z, logabsdet = t.inverse(z)
            total = total + logabsdet
        return z, total

    def output_shape(self, shape: tuple) -> tuple:
        for t in self.transforms:
            shape = t.output_shape(shape)
        return shape


class InverseTransform(Transform):
    """Swap the directions of a transform (e.g. to use a flow in its sampling direction)."""

    def __init__(self, transform: Transform):
        super().__init__()
        self.transform = transform

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.transform.inverse(x)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self.transform(z)


# ----------------------------------------------------------------------------- planar flow
def _u_hat(u: Tensor, w: Tensor) -> Tensor:
    """Rezende & Mohamed 2015, App. A.1: u_hat = u + (m(w.u) - w.u) w / ||w||^2 with
    m(a) = -1 + softplus(a), so that w.u_hat > -1 and f is invertible for h = tanh."""
    wu = (w * u).sum(axis=-1, keepdims=True)
    m = tl.softplus(wu) - 1.0
    return u + (m - wu) * w / (w * w).sum(axis=-1, keepdims=True)


def planar_transform(z: Tensor, u: Tensor, w: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """f(z) = z + u_hat tanh(w.z + b)  (Rezende & Mohamed 2015, eq. 10).

    Matrix determinant lemma (eq. 11-12): det(I + u_hat psi^T) = 1 + u_hat.psi with
    psi = tanh'(w.z + b) w. Parameters broadcast: (D,) shared or (B, D) amortised; b (1,)
    or (B, 1). Returns (f(z), log|1 + u_hat.psi|) with shapes (B, D), (B,).
    """
    u_hat = _u_hat(u, w)
    a = (z * w).sum(axis=-1, keepdims=True) + b                 # (B, 1)
    h = tl.tanh(a)
    y = z + u_hat * h
    u_psi = (1.0 - h * h) * (w * u_hat).sum(axis=-1, keepdims=True)   # (B, 1), > -1
    return y, tl.log1p(u_psi).reshape(-1)


def _solve_monotone(s, c, b, xp, iters: int = 200):
    """Root of g(a) = a + c tanh(a + b) - s, c > -1 (g increasing): safeguarded Newton.

    The root lies in [s - |c|, s + |c|]; a Newton step that leaves the bracket is replaced
    by bisection, so it converges for every c > -1, even c close to -1 where plain Newton
    overshoots."""
    lo, hi = s - xp.abs(c) - 1.0, s + xp.abs(c) + 1.0
    a = s.copy()
    for _ in range(iters):
        t = xp.tanh(a + b)
        g = a + c * t - s
        lo = xp.where(g < 0, a, lo)
        hi = xp.where(g > 0, a, hi)
        step = a - g / (1.0 + c * (1.0 - t * t))
        a_new = xp.where((step > lo) & (step < hi), step, 0.5 * (lo + hi))
        done = xp.max(xp.abs(a_new - a) / (1.0 + xp.abs(a))) < 1e-15
        a = a_new
        if done:
            break
    return a


def planar_inverse(y: Tensor, u: Tensor, w: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Inverse of `planar_transform`: it has no closed form, but projecting f(z) = y on w
    gives the scalar equation  alpha + (w.u_hat) tanh(alpha + b) = w.y  for alpha = w.z,
    increasing in alpha, solved by 1-D root finding; then z = y - u_hat tanh(alpha + b).

    The root is found on raw arrays in float64; one Newton step taken in Tensor ops from it
    leaves the value unchanged and gives the implicit-function gradient w.r.t. y, u, w, b.
    """
    u_hat = _u_hat(u, w)
    s = (w * y).sum(axis=-1, keepdims=True)                     # (B, 1)
    c = (w * u_hat).sum(axis=-1, keepdims=True)                 # (1 or B, 1)
    xp = y.xp
    cast = (lambda t: t.array.astype(np.float64))
    b_arr = cast(b) + xp.zeros_like(cast(s))
    a0 = _solve_monotone(cast(s), cast(c) + xp.zeros_like(cast(s)), b_arr, xp)
    a0 = Tensor._make(a0.astype(y.dtype))
    t0 = tl.tanh(a0 + b)
    alpha = a0 - (a0 + c * t0 - s) / (1.0 + c * (1.0 - t0 * t0))
    h = tl.tanh(alpha + b)
    z = y - u_hat * h
    return z, -tl.log1p((1.0 - h * h) * c).reshape(-1)


class PlanarFlow(Transform):
    """One planar layer with its own parameters u, w in R^D and b in R."""

    def __init__(self, features: int, generator=None):
        super().__init__()
        # Start near the identity: u = a w / ||w||^2 with m(a) = 0, a = log(e - 1), gives
        # u_hat = 0; plus a little noise. (Small ||w|| would blow u_hat's correction up.)
        w = tl.randn(features, generator=generator) / math.sqrt(features)
        u = w * (math.log(math.e - 1.0) / (w * w).sum()) \
            + 0.01 * tl.randn(features, generator=generator)
        self.u = nn.Parameter(u)
        self.w = nn.Parameter(w)
        self.b = nn.Parameter(tl.zeros(1))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return planar_transform(x, self.u, self.w, self.b)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return planar_inverse(z, self.u, self.w, self.b)


# ----------------------------------------------------------------------------- coupling
def checkerboard_mask(height: int, width: int, parity: int = 0) -> np.ndarray:
    """(1, 1, H, W) mask, 1 where (i + j + parity) is even (Dinh et al. 2017, Fig. 3)."""
    i, j = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return ((i + j + parity) % 2 == 0).astype(np.float32).reshape(1, 1, height, width)


def channel_mask(channels: int, parity: int = 0) -> np.ndarray:
    """(1, C, 1, 1) mask: the first (parity 0) or last half of the channels is kept."""
    m = np.zeros(channels, dtype=np.float32)
    m[: channels // 2] = 1.0
    return (m if parity == 0 else 1.0 - m).reshape(1, channels, 1, 1)


def alternating_mask(features: int, parity: int = 0) -> np.ndarray:
    """(1, D) mask for vectors: every other feature is kept."""
    return ((np.arange(features) + parity) % 2 == 0).astype(np.float32).reshape(1, features)


def _coupling(x: Tensor, log_s: Tensor, t: Tensor, inverse: bool = False):
    """forward: (x exp(log_s) + t, sum log_s); inverse: ((x - t) exp(-log_s), -sum log_s).
    tl.ops.coupling dispatches to the fused kernel when one applies."""
    from tinylatent.ops.coupling import affine_coupling, affine_coupling_inverse
    return (affine_coupling_inverse if inverse else affine_coupling)(x, log_s, t)


class AffineCoupling(Transform):
    """Affine coupling (Dinh et al. 2017; the Glow table of seed 001):

        (log s, t) = NN(x_b),   y_a = s * x_a + t,   y_b = x_b,   log|det| = sum(log s)

    written with a binary mask m (1 on x_b): y = m x + (1 - m)(x exp(log s) + t), which
    covers checkerboard and channel masks for images and alternating masks for vectors.
    `net` maps (B, C, ...) to (B, 2C, ...): raw scale and shift. log s = scale * tanh(raw)
    keeps the scales bounded early in training (Dinh et al. 2017, Sec. 4.1).
    """

    def __init__(self, mask: np.ndarray, net: nn.Module):
        super().__init__()
        mask = np.asarray(mask, dtype=np.float32)
        self.register_buffer("mask", tl.tensor(mask), persistent=False)
        self.net = net
        shape = (1, mask.shape[1]) + (1,) * (mask.ndim - 2)
        self.scale = nn.Parameter(tl.ones(*shape))

    def _log_s_t(self, x_b: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        raw, t = tl.chunk(self.net(x_b), 2, axis=1)             # (B, C, ...) each
        keep = 1.0 - mask
        return self.scale * tl.tanh(raw) * keep, t * keep

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mask = self.mask.to(x.dtype)
        log_s, t = self._log_s_t(x * mask, mask)
        return _coupling(x, log_s, t)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        mask = self.mask.to(z.dtype)
        log_s, t = self._log_s_t(z * mask, mask)                # z_b == x_b
        return _coupling(z, log_s, t, inverse=True)


# ----------------------------------------------------------------------------- permutations
class Permutation(Transform):
    """z = x[:, perm] along axis 1 (features or channels); |det| = 1."""

    def __init__(self, perm):
        super().__init__()
        perm = np.asarray(perm, dtype=np.int64)
        self.register_buffer("perm", tl.tensor(perm), persistent=False)
        self.register_buffer("inv_perm", tl.tensor(np.argsort(perm)), persistent=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x[:, self.perm], tl.zeros(x.shape[0], dtype=x.dtype, device=x.device)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return z[:, self.inv_perm], tl.zeros(z.shape[0], dtype=z.dtype, device=z.device)


class ReversePermutation(Permutation):
    def __init__(self, features: int):
        super().__init__(np.arange(features)[::-1].copy())


class RandomPermutation(Permutation):
    def __init__(self, features: int, seed: int = 0):
        super().__init__(np.random.default_rng(seed).permutation(features))


# ----------------------------------------------------------------------------- MAF layer
class MaskedAffineAutoregressive(Transform):
    """One MAF layer (Papamakarios et al. 2017, eq. 3-5): with (mu_i, alpha_i) functions
    of x_{<i} computed in one pass by a MADE,

        forward:  z_i = (x_i - mu_i) exp(-alpha_i),   log|det dz/dx| = -sum_i alpha_i
        inverse:  x_i = z_i exp(alpha_i) + mu_i,      D sequential passes (sampling is slow).

    alpha = 3 tanh(raw / 3) is a soft clamp that keeps early training stable; with
    learnable_scale=True, alpha = scale * tanh(raw) with a learned per-feature bound `scale`
    starting at 1, as RealNVP's couplings (Dinh et al. 2017, Sec. 4.1): the gentler start
    fits 2-D densities markedly faster.
    """

    def __init__(self, features: int, hidden_features: int = 64, num_hidden: int = 2,
                 ordering: str | np.ndarray = "natural", seed: int = 0,
                 learnable_scale: bool = False):
        super().__init__()
        from .autoregressive import MADE
        self.features = features
        self.made = MADE(in_features=features, hidden_features=(hidden_features,) * num_hidden,
                         out_multiplier=2, ordering=ordering, seed=seed, zero_init_output=True)
        self.scale = nn.Parameter(tl.ones(1, features)) if learnable_scale else None

    def _mu_alpha(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out = self.made(x)                                      # (B, 2D)
        mu, raw = out[:, : self.features], out[:, self.features:]
        if self.scale is not None:
            return mu, self.scale * tl.tanh(raw)
        return mu, 3.0 * tl.tanh(raw / 3.0)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, alpha = self._mu_alpha(x)
        return (x - mu) * tl.exp(-alpha), -alpha.sum(axis=1)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        # After pass k every x_i whose degree is <= k is exact, so D passes recover x.
        x = tl.zeros_like(z)
        for _ in range(self.features):
            mu, alpha = self._mu_alpha(x)
            x = z * tl.exp(alpha) + mu
        mu, alpha = self._mu_alpha(x)
        return x, alpha.sum(axis=1)
