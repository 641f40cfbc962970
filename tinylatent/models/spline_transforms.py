"""Rational-quadratic neural spline flows (Durkan, Bekasov, Murray & Papamakarios 2019).

A monotone rational-quadratic (RQ) spline with K bins on [-B, B] and the identity outside
(linear tails): knots (x^k, y^k), k = 0..K, with x^0 = y^0 = -B, x^K = y^K = B, and
derivatives d^k > 0 at the knots (d^0 = d^K = 1, so that the tails join smoothly). In bin k,
with s_k = (y^{k+1} - y^k) / (x^{k+1} - x^k) and xi = (x - x^k) / (x^{k+1} - x^k) in [0, 1]
(Durkan et al. 2019, eq. 4-5, after Gregory & Delbourgo 1982):

    g(x) = y^k + (y^{k+1} - y^k) [s_k xi^2 + d^k xi (1 - xi)]
                 / [s_k + (d^{k+1} + d^k - 2 s_k) xi (1 - xi)]

    dg/dx = s_k^2 [d^{k+1} xi^2 + 2 s_k xi (1 - xi) + d^k (1 - xi)^2]
            / [s_k + (d^{k+1} + d^k - 2 s_k) xi (1 - xi)]^2                         (eq. 5)

The inverse solves the quadratic a xi^2 + b xi + c = 0 of App. A (eq. 6-8) in its stable form
xi = 2c / (-b - sqrt(b^2 - 4ac)). Widths, heights (softmax) and derivatives (softplus) are
outputs of a conditioner network; `RQSplineCoupling` is the coupling layer (Sec. 3.2) in the
data-to-noise convention of `flow_transforms.py`. Everything is built from differentiable
tl ops; only the bin index (piecewise-constant in x) is computed on raw arrays.
"""
from __future__ import annotations

import math

import numpy as np

import tinylatent as tl
from tinylatent import nn
from tinylatent.tensor import Tensor

from .flow_transforms import Transform

__all__ = ["rq_spline", "RQSplineCoupling", "MIN_BIN_WIDTH", "MIN_BIN_HEIGHT",
           "MIN_DERIVATIVE"]

MIN_BIN_WIDTH = 1e-3     # as nflows: no bin collapses, so s_k and xi stay well defined
MIN_BIN_HEIGHT = 1e-3
MIN_DERIVATIVE = 1e-3
# softplus(raw + _DERIV_SHIFT) + MIN_DERIVATIVE = 1 at raw = 0: zero conditioner outputs give
# equal bins and unit derivatives, i.e. the identity (a coupling starts at the identity).
_DERIV_SHIFT = math.log(math.expm1(1.0 - MIN_DERIVATIVE))


def _knots(raw: Tensor, tail_bound: float, min_size: float) -> tuple[Tensor, Tensor]:
    """Unnormalised bin sizes (..., K) -> knot positions (..., K+1) from -B to B and the
    bin sizes (..., K): softmax, a floor of min_size, cumulative sum."""
    k = raw.shape[-1]
    if min_size * k >= 1.0:
        raise ValueError(f"rq_spline: min bin size {min_size} too large for {k} bins")
    sizes = min_size + (1.0 - min_size * k) * tl.softmax(raw, axis=-1)
    inner = 2.0 * tail_bound * tl.cumsum(sizes, axis=-1)[..., :-1] - tail_bound   # (..., K-1)
    # The end knots are exactly -B and B (not the rounded cumulative sum), so that the spline
    # meets the identity tails at +-B.
    ends = np.zeros(k + 1)
    ends[0], ends[-1] = -tail_bound, tail_bound
    knots = tl.pad(inner, [(0, 0)] * (raw.ndim - 1) + [(1, 1)]) \
        + tl.tensor(ends, dtype=raw.dtype, device=raw.device)   # (..., K+1)
    return knots, knots[..., 1:] - knots[..., :-1]


def _take(x: Tensor, idx) -> Tensor:
    """x[..., idx] per element: (..., K') with idx (...) -> (...)."""
    return tl.take_along_axis(x, idx[..., None], axis=-1)[..., 0]


def rq_spline(x: Tensor, unnormalized_widths: Tensor, unnormalized_heights: Tensor,
              unnormalized_derivatives: Tensor, tail_bound: float = 3.0,
              inverse: bool = False) -> tuple[Tensor, Tensor]:
    """Elementwise monotone RQ spline on [-B, B], identity outside (Durkan et al. 2019).

    x: (...,); widths and heights (..., K); derivatives (..., K-1) at the inner knots.
    Returns (g(x), log|g'(x)|) elementwise, or with inverse=True (g^{-1}(x), log|(g^{-1})'|).
    """
    k = unnormalized_widths.shape[-1]
    if unnormalized_heights.shape[-1] != k or unnormalized_derivatives.shape[-1] != k - 1:
        raise ValueError(
            f"rq_spline: widths {unnormalized_widths.shape}, heights "
            f"{unnormalized_heights.shape}, derivatives {unnormalized_derivatives.shape}: "
            f"expected K, K and K-1 values on the last axis")
    if unnormalized_widths.shape[:-1] != x.shape:
        raise ValueError(f"rq_spline: parameters {unnormalized_widths.shape} do not match "
                         f"inputs {x.shape} (expected inputs.shape + (K,))")
    xs, widths = _knots(unnormalized_widths, tail_bound, MIN_BIN_WIDTH)
    ys, heights = _knots(unnormalized_heights, tail_bound, MIN_BIN_HEIGHT)
    inner = tl.softplus(unnormalized_derivatives + _DERIV_SHIFT) + MIN_DERIVATIVE
    pad = [(0, 0)] * (inner.ndim - 1) + [(1, 1)]
    derivs = tl.pad(inner, pad, value=1.0)                      # (..., K+1), d^0 = d^K = 1

    inside_arr = (x.array >= -tail_bound) & (x.array <= tail_bound)
    inside = tl.tensor(inside_arr, device=x.device)
    # Evaluate the spline at a point inside [-B, B] everywhere (outside points are replaced
    # by the identity below): no inf / nan reaches the gradient through `where`.
    xc = tl.clamp(x, -tail_bound, tail_bound)
    knots_in = ys if inverse else xs
    xp = x.xp
    idx = (xp.asarray(xc.array)[..., None] >= knots_in.array[..., :-1]).sum(axis=-1) - 1
    idx = xp.clip(idx, 0, k - 1)                                # bin of each element

    x_k, w_k = _take(xs, idx), _take(widths, idx)
    y_k, h_k = _take(ys, idx), _take(heights, idx)
    d_k, d_k1 = _take(derivs, idx), _take(derivs[..., 1:], idx)
    s_k = h_k / w_k
    if not inverse:
        xi = (xc - x_k) / w_k
        xi1 = xi * (1.0 - xi)
        denom = s_k + (d_k1 + d_k - 2.0 * s_k) * xi1
        out = y_k + h_k * (s_k * xi * xi + d_k * xi1) / denom
    else:                                                       # App. A, eq. 6-8
        dy = xc - y_k
        a = h_k * (s_k - d_k) + dy * (d_k1 + d_k - 2.0 * s_k)
        b = h_k * d_k - dy * (d_k1 + d_k - 2.0 * s_k)
        c = -s_k * dy
        disc = tl.clamp(b * b - 4.0 * a * c, min=0.0)           # >= 0 in exact arithmetic
        xi = tl.clamp(2.0 * c / (-b - tl.sqrt(disc)), 0.0, 1.0)
        xi1 = xi * (1.0 - xi)
        denom = s_k + (d_k1 + d_k - 2.0 * s_k) * xi1
        out = x_k + xi * w_k
    # eq. 5: log g'(xi) in the bin; the inverse's is its negative at the same point.
    logderiv = (2.0 * tl.log(s_k) + tl.log(d_k1 * xi * xi + 2.0 * s_k * xi1
                                            + d_k * (1.0 - xi) ** 2) - 2.0 * tl.log(denom))
    if inverse:
        logderiv = -logderiv
    zero = tl.zeros_like(logderiv)
    return tl.where(inside, out, x), tl.where(inside, logderiv, zero)


class RQSplineCoupling(Transform):
    """Coupling with an RQ spline (Durkan et al. 2019, Sec. 3.2): with a binary mask m
    (1 on x_b), theta = NN(m x), y_a = g_theta(x_a) elementwise, y_b = x_b,
    log|det| = sum_a log g'_theta(x_a). `net` maps (B, D) to (B, D (3K - 1)); the raw widths
    and heights are divided by sqrt(hidden_features), as nflows does, so that early updates
    do not make the bins collapse; a zero-initialised last layer starts at the identity."""

    def __init__(self, mask: np.ndarray, net: nn.Module, num_bins: int = 8,
                 tail_bound: float = 3.0, hidden_features: int = 64):
        super().__init__()
        mask = np.asarray(mask, dtype=np.float32)
        if mask.ndim != 2 or mask.shape[0] != 1:
            raise ValueError(f"RQSplineCoupling: mask must have shape (1, D), got {mask.shape}")
        self.register_buffer("mask", tl.tensor(mask), persistent=False)
        self.net, self.num_bins, self.tail_bound = net, num_bins, float(tail_bound)
        self.norm = 1.0 / math.sqrt(hidden_features)

    def _spline(self, x: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        mask = self.mask.to(x.dtype)
        k, (b, d) = self.num_bins, x.shape
        params = self.net(x * mask).reshape(b, d, 3 * k - 1)    # (B, D, 3K-1)
        w = params[..., :k] * self.norm
        h = params[..., k: 2 * k] * self.norm
        dv = params[..., 2 * k:]
        y, logderiv = rq_spline(x, w, h, dv, self.tail_bound, inverse=inverse)
        keep = 1.0 - mask
        return mask * x + keep * y, (logderiv * keep).sum(axis=1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._spline(x, inverse=False)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self._spline(z, inverse=True)                    # z_b == x_b: same params
