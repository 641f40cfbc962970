"""Numba CPU kernels for layer normalization over the last axis, one row at a time, and the
NumPy reference twin they are tested against (Ba, Kiros & Hinton 2016, Sec. 3).

    mu_r = mean_j x_rj,   rstd_r = 1 / sqrt(mean_j (x_rj - mu_r)^2 + eps)
    xhat_rj = (x_rj - mu_r) rstd_r,   y_rj = xhat_rj w_j + b_j

Backward (one kernel, two sweeps per row; dw and db accumulate across rows):

    gh_rj = gy_rj w_j
    gx_rj = rstd_r (gh_rj - mean_j gh_rj - xhat_rj mean_j (gh_rj xhat_rj))
    gw_j  = sum_r gy_rj xhat_rj,   gb_j = sum_r gy_rj

The forward takes mean and variance in ONE sweep: sums of (x - x_r0) and (x - x_r0)^2,
shifted by the row's first element so that a large common offset does not cancel
catastrophically (var = s2/D - (s1/D)^2 of the shifted values, accumulated in float64).
Rows are the leading axes flattened: x is (R, D) C-contiguous; w and b are (D,) (pass ones
and zeros when the layer has no affine part).
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

__all__ = ["layer_norm_forward", "layer_norm_backward", "layer_norm_forward_reference",
           "layer_norm_backward_reference"]

_JIT = dict(nopython=True, cache=True, nogil=True, fastmath={"contract", "arcp", "nsz"})
# The backward subtracts the row mean of gh = gy w from gh itself: contracted into an FMA,
# g*w - mean would take the exact product against the rounded one and leave a residue that
# rstd (up to 1/sqrt(eps) ~ 316) magnifies; a row of one element must get exactly 0.
_JIT_BACKWARD = dict(nopython=True, cache=True, nogil=True, fastmath={"arcp", "nsz"})
# The row sums are their own functions, compiled with reassociation: without it LLVM must add
# in source order, one dependent float64 add per element, and the loop does not vectorize
# (5x slower at D = 256). fastmath flags belong to each instruction, so they survive LLVM's
# inlining into the callers; Numba's own `inline="always"` would take the caller's flags.
_JIT_SUMS = dict(nopython=True, cache=True, nogil=True,
                 fastmath={"reassoc", "contract", "arcp", "nsz"})


@nb.jit(**_JIT_SUMS)
def _shifted_sums(row, shift):  # pragma: no cover - compiled
    """(sum_j t_j, sum_j t_j^2) of t = row - shift, accumulated in float64."""
    s1 = 0.0
    s2 = 0.0
    for j in range(row.shape[0]):
        t = np.float64(row[j] - shift)
        s1 += t
        s2 += t * t
    return s1, s2


@nb.jit(**_JIT)
def _forward(x, w, b, eps, y, mu, rstd):  # pragma: no cover - compiled
    n, d = x.shape
    for r in range(n):
        row = x[r]
        shift = row[0]
        s1, s2 = _shifted_sums(row, shift)
        m1 = s1 / d
        var = max(s2 / d - m1 * m1, 0.0)
        m = m1 + shift
        rs = 1.0 / math.sqrt(var + eps)
        mu[r] = m
        rstd[r] = rs
        m_t = row.dtype.type(m)
        rs_t = row.dtype.type(rs)
        out = y[r]
        for j in range(d):
            out[j] = (row[j] - m_t) * rs_t * w[j] + b[j]


@nb.jit(**_JIT_SUMS)
def _row_dots(row, g, w, m, rs):  # pragma: no cover - compiled
    """(sum_j gh_j, sum_j gh_j xhat_j) of one row, accumulated in float64."""
    a = 0.0
    c = 0.0
    for j in range(row.shape[0]):
        xhat = (row[j] - m) * rs
        gh = g[j] * w[j]
        a += gh
        c += gh * xhat
    return a, c


@nb.jit(**_JIT_BACKWARD)
def _backward(gy, x, w, mu, rstd, gx, gw, gb):  # pragma: no cover - compiled
    n, d = x.shape
    acc_w = np.zeros(d, dtype=np.float64)
    acc_b = np.zeros(d, dtype=np.float64)
    for r in range(n):
        row, g, out = x[r], gy[r], gx[r]
        m = row.dtype.type(mu[r])
        rs = row.dtype.type(rstd[r])
        a, c = _row_dots(row, g, w, m, rs)
        a_t = row.dtype.type(a / d)
        c_t = row.dtype.type(c / d)
        for j in range(d):          # elementwise in j: vectorizes without reassociation
            xhat = (row[j] - m) * rs
            out[j] = rs * (g[j] * w[j] - a_t - xhat * c_t)
            acc_w[j] += g[j] * xhat
            acc_b[j] += g[j]
    for j in range(d):
        gw[j] = acc_w[j]
        gb[j] = acc_b[j]


def _rows(a: np.ndarray, name: str) -> np.ndarray:
    if a.ndim < 1 or a.dtype not in (np.float32, np.float64):
        raise TypeError(f"layer_norm kernel: {name} must be a float32/float64 array with at "
                        f"least one axis, got {a.dtype} {a.shape}")
    return np.ascontiguousarray(a).reshape(-1, a.shape[-1])


def layer_norm_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float = 1e-5):
    """(y, mu, rstd): y shaped like x; mu and rstd (R,) float64 per row (for the backward)."""
    x2 = _rows(x, "x")
    d = x2.shape[1]
    if w.shape != (d,) or b.shape != (d,):
        raise ValueError(f"layer_norm kernel: weight {w.shape} and bias {b.shape} must be "
                         f"({d},) for input {x.shape}")
    # allocated in x's shape and written through a (R, D) view: the caller gets an array
    # that owns its memory (a leaf's .grad would copy a view, see autograd._accumulate_leaf)
    y = np.empty(x.shape, x2.dtype)
    mu = np.empty(x2.shape[0], dtype=np.float64)
    rstd = np.empty(x2.shape[0], dtype=np.float64)
    _forward(x2, w.astype(x2.dtype, copy=False), b.astype(x2.dtype, copy=False), float(eps),
             y.reshape(x2.shape), mu, rstd)
    return y, mu, rstd


def layer_norm_backward(gy: np.ndarray, x: np.ndarray, w: np.ndarray, mu: np.ndarray,
                        rstd: np.ndarray):
    """(gx, gw, gb) for the output gradient gy (shaped like x)."""
    x2, g2 = _rows(x, "x"), _rows(gy.astype(x.dtype, copy=False), "grad")
    gx = np.empty(x.shape, x2.dtype)                 # owns its memory (as y above)
    gw = np.empty(x2.shape[1], dtype=x2.dtype)
    gb = np.empty(x2.shape[1], dtype=x2.dtype)
    _backward(g2, x2, w.astype(x2.dtype, copy=False), mu, rstd, gx.reshape(x2.shape), gw, gb)
    return gx, gw, gb


# ---------------------------------------------------------------------- reference twin
def layer_norm_forward_reference(x, w, b, eps: float = 1e-5, xp=np):
    """The same (y, mu, rstd) in plain array ops (two passes: mean, then variance)."""
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    rstd = 1.0 / xp.sqrt(var + eps)
    y = (x - mu) * rstd * w + b
    return y, mu.reshape(-1).astype(xp.float64), rstd.reshape(-1).astype(xp.float64)


def layer_norm_backward_reference(gy, x, w, mu, rstd, xp=np):
    """The same (gx, gw, gb) in plain array ops."""
    d = x.shape[-1]
    x2, g2 = x.reshape(-1, d), gy.reshape(-1, d)
    mu2, rs2 = mu.astype(x.dtype)[:, None], rstd.astype(x.dtype)[:, None]
    xhat = (x2 - mu2) * rs2
    gh = g2 * w
    gx = rs2 * (gh - gh.mean(axis=1, keepdims=True)
                - xhat * (gh * xhat).mean(axis=1, keepdims=True))
    return gx.reshape(x.shape), (g2 * xhat).sum(axis=0), g2.sum(axis=0)
