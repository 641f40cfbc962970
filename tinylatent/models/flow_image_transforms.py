"""Normalizing-flow transforms on images (B, C, H, W): the Glow table of seed 001
(ActNorm, invertible 1x1 convolution; affine coupling is in `flow_transforms.py`), RealNVP's
squeeze and multi-scale architecture, and the logit preprocessing of dequantised pixels.

The 1x1 convolution uses two differentiable matrix ops of tinylatent/ops/linalg.py,
`matrix_inverse` and `logabsdet` (log|det A|), re-exported here.
"""
from __future__ import annotations

import math

import numpy as np

import tinylatent as tl
from tinylatent import nn
from tinylatent.ops.linalg import logabsdet, matrix_inverse
from tinylatent.tensor import Tensor

from .flow_transforms import Transform, sum_except_batch

__all__ = ["matrix_inverse", "logabsdet", "ActNorm", "InvertibleConv1x1", "Squeeze",
           "MultiScaleTransform", "LogitTransform"]


# ----------------------------------------------------------------------------- layers
def _per_channel(p: Tensor, ndim: int) -> Tensor:
    """(C,) -> (1, C, 1, 1) for images, (1, C) for vectors."""
    return p.reshape((1, -1) + (1,) * (ndim - 2))


def _per_example(value: Tensor, x: Tensor) -> Tensor:
    """A log-det that is the same for every example, as a (B,) tensor."""
    return value.reshape(1).expand(x.shape[0])


def _spatial(x: Tensor) -> int:
    return int(np.prod(x.shape[2:])) if x.ndim > 2 else 1


class ActNorm(Transform):
    """Glow's activation normalisation (Kingma & Dhariwal 2018, Sec. 3.1):
    y = s * x + b per channel, log|det| = H W sum(log|s|). s = exp(log_s); the first batch
    seen sets b, s so that the output has zero mean and unit variance per channel
    (data-dependent initialisation)."""

    def __init__(self, num_features: int):
        super().__init__()
        self.log_s = nn.Parameter(tl.zeros(num_features))
        self.b = nn.Parameter(tl.zeros(num_features))
        self.register_buffer("initialized", tl.tensor(0))   # saved: a loaded model is not re-set

    def _init(self, x: Tensor) -> None:
        axes = (0,) + tuple(range(2, x.ndim))
        data = x.array
        mean, std = data.mean(axis=axes), data.std(axis=axes)
        with tl.no_grad():
            self.log_s.copy_(tl.tensor(-x.xp.log(std + 1e-6), dtype=self.log_s.dtype))
            self.b.copy_(tl.tensor(-mean / (std + 1e-6), dtype=self.b.dtype))
        self.initialized = tl.tensor(1, device=x.device)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if not bool(self.initialized):
            self._init(x)
        y = x * tl.exp(_per_channel(self.log_s, x.ndim)) + _per_channel(self.b, x.ndim)
        logdet = _spatial(x) * self.log_s.sum()
        return y, _per_example(logdet, x)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        x = (z - _per_channel(self.b, z.ndim)) * tl.exp(-_per_channel(self.log_s, z.ndim))
        return x, _per_example(-_spatial(z) * self.log_s.sum(), z)


class InvertibleConv1x1(Transform):
    """Glow's invertible 1x1 convolution (Sec. 3.2): y_ij = W x_ij for every pixel,
    log|det| = H W log|det W|. Initialised at a random rotation.

    lu=True uses the LU form (eq. 10): W = P L (U + diag(sign(s) exp(log|s|))), P fixed,
    L unit lower triangular, U strictly upper; then log|det| = H W sum(log|s|) in O(C).
    """

    def __init__(self, num_features: int, lu: bool = False, seed: int = 0):
        super().__init__()
        c = num_features
        q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((c, c)))
        self.lu = lu
        if not lu:
            self.weight = nn.Parameter(tl.tensor(q.astype(np.float32)))
            return
        import scipy.linalg
        p, lower, upper = scipy.linalg.lu(q)
        s = np.diag(upper)
        self.register_buffer("P", tl.tensor(p.astype(np.float32)))
        self.register_buffer("sign_s", tl.tensor(np.sign(s).astype(np.float32)))
        self.lower = nn.Parameter(tl.tensor(np.tril(lower, -1).astype(np.float32)))
        self.upper = nn.Parameter(tl.tensor(np.triu(upper, 1).astype(np.float32)))
        self.log_s = nn.Parameter(tl.tensor(np.log(np.abs(s)).astype(np.float32)))

    def _weight(self) -> tuple[Tensor, Tensor]:
        """(W, log|det W|)."""
        if not self.lu:
            return self.weight, logabsdet(self.weight)
        dt = self.log_s.dtype
        c = self.log_s.shape[0]
        eye = tl.eye(c, dtype=dt, device=self.log_s.device)
        lower = tl.tril(self.lower, -1) + eye
        diag = eye * (self.sign_s.to(dt) * tl.exp(self.log_s))
        upper = tl.triu(self.upper, 1) + diag
        return self.P.to(dt) @ (lower @ upper), self.log_s.sum()

    @staticmethod
    def _apply(w: Tensor, x: Tensor) -> Tensor:
        if x.ndim == 2:
            return x @ w.transpose(0, 1)                          # (B, C)
        b, c = x.shape[:2]
        y = w @ x.reshape(b, c, -1)                               # (C, C) @ (B, C, HW)
        return y.reshape(x.shape)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        w, lad = self._weight()
        return self._apply(w, x), _per_example(_spatial(x) * lad, x)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        w, lad = self._weight()
        return (self._apply(matrix_inverse(w), z),
                _per_example(-_spatial(z) * lad, z))


class Squeeze(Transform):
    """(B, C, H, W) -> (B, 4C, H/2, W/2): each 2x2 block becomes 4 channels
    (Dinh et al. 2017, Sec. 3.6); a permutation of entries, so log|det| = 0."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        b, c, h, w = x.shape
        if h % 2 or w % 2:
            raise ValueError(f"Squeeze: height and width must be even, got shape {x.shape}")
        y = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
        return y.reshape(b, 4 * c, h // 2, w // 2), tl.zeros(b, dtype=x.dtype, device=x.device)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        b, c4, h, w = z.shape
        x = z.reshape(b, c4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
        return x.reshape(b, c4 // 4, 2 * h, 2 * w), tl.zeros(b, dtype=z.dtype, device=z.device)

    def output_shape(self, shape: tuple) -> tuple:
        c, h, w = shape
        return (4 * c, h // 2, w // 2)


class MultiScaleTransform(Transform):
    """RealNVP's multi-scale architecture (Dinh et al. 2017, Sec. 3.6; Glow's Fig. 2b):
    after every level but the last, half the channels are factored out and go straight to
    the base distribution; the rest continue. Output: all parts flattened, (B, D)."""

    def __init__(self, levels, input_shape: tuple):
        super().__init__()
        self.levels = nn.ModuleList(list(levels))
        self.input_shape = tuple(input_shape)
        self.shapes = []                                          # factored-out shapes
        shape = self.input_shape
        for i, level in enumerate(self.levels):
            c, h, w = level.output_shape(shape)
            if i < len(self.levels) - 1:
                self.shapes.append((c // 2, h, w))
                shape = (c - c // 2, h, w)
            else:
                self.shapes.append((c, h, w))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        b = x.shape[0]
        total = tl.zeros(b, dtype=x.dtype, device=x.device)
        parts = []
        for i, level in enumerate(self.levels):
            x, logabsdet = level(x)
            total = total + logabsdet
            if i < len(self.levels) - 1:
                k = self.shapes[i][0]
                parts.append(x[:, :k].reshape(b, -1))           # factored out
                x = x[:, k:]
        parts.append(x.reshape(b, -1))
        return tl.cat(parts, axis=1), total

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        b = z.shape[0]
        sizes = [int(np.prod(s)) for s in self.shapes]
        parts = tl.split(z, sizes, axis=1)
        total = tl.zeros(b, dtype=z.dtype, device=z.device)
        x = parts[-1].reshape((b,) + self.shapes[-1])
        for i in range(len(self.levels) - 1, -1, -1):
            if i < len(self.levels) - 1:
                x = tl.cat([parts[i].reshape((b,) + self.shapes[i]), x], axis=1)
            x, logabsdet = self.levels[i].inverse(x)
            total = total + logabsdet
        return x, total

    def output_shape(self, shape: tuple) -> tuple:
        return (sum(int(np.prod(s)) for s in self.shapes),)


class LogitTransform(Transform):
    """Dequantised pixels x in [0, 1] to logit space (Dinh et al. 2017, Sec. 4.1):
    p = alpha + (1 - 2 alpha) x,  y = log p - log(1 - p),
    log|dy/dx| = log(1 - 2 alpha) - log p - log(1 - p) per pixel."""

    def __init__(self, alpha: float = 1e-6):
        super().__init__()
        self.alpha = alpha

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        p = self.alpha + (1.0 - 2.0 * self.alpha) * x
        log_p, log_q = tl.log(p), tl.log1p(-p)
        per_pixel = math.log(1.0 - 2.0 * self.alpha) - log_p - log_q
        return log_p - log_q, sum_except_batch(per_pixel)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        # log p + log(1 - p) = logsigmoid(z) + logsigmoid(-z): stable for large |z|
        x = (tl.sigmoid(z) - self.alpha) / (1.0 - 2.0 * self.alpha)
        per_pixel = tl.logsigmoid(z) + tl.logsigmoid(-z) - math.log(1.0 - 2.0 * self.alpha)
        return x, sum_except_batch(per_pixel)
