"""Numba CPU kernels for the affine coupling layer (RealNVP / Glow), one pass each way.

    forward:  y = x * exp(log_s) + t,  ld_b = sum_k log_s[b, k]
    inverse:  x = (y - t) * exp(-log_s),  ld_b = -sum_k log_s[b, k]
    backward of forward, given gy:   gx = gy e,  glog_s = gy (y - t),  gt = gy
    backward of inverse, given gx:   gy = gx / e,  glog_s = -gx x,  gt = -gx / e
with e = exp(log_s) (vectorized `fexp`); the logabsdet's gradient (a per-sample constant
added to glog_s) is added by the autograd engine. Rows are (B, K) views.
"""
from __future__ import annotations

import numba as nb

from ._math import fexp

_JIT = dict(nopython=True, cache=True, nogil=True,
            fastmath={"reassoc", "contract", "nsz", "arcp"})


@nb.jit(**_JIT)
def coupling_forward(x, log_s, t, inverse, out, ld):
    bsz, k = x.shape
    for b in range(bsz):
        acc = 0.0
        if inverse:
            for j in range(k):
                ls = log_s[b, j]
                acc += ls
                out[b, j] = (x[b, j] - t[b, j]) * fexp(-ls)
            ld[b] = -acc
        else:
            for j in range(k):
                ls = log_s[b, j]
                acc += ls
                out[b, j] = x[b, j] * fexp(ls) + t[b, j]
            ld[b] = acc


@nb.jit(**_JIT)
def coupling_backward(g, out, log_s, t, inverse, g_in, g_ls, g_t):
    """`out` is the forward's output (y for forward, x for inverse): no input copy kept."""
    bsz, k = g.shape
    for b in range(bsz):
        if inverse:
            for j in range(k):
                gj = g[b, j]
                r = gj * fexp(-log_s[b, j])
                g_in[b, j] = r
                g_t[b, j] = -r
                g_ls[b, j] = -gj * out[b, j]
        else:
            for j in range(k):
                gj = g[b, j]
                g_in[b, j] = gj * fexp(log_s[b, j])
                g_t[b, j] = gj
                g_ls[b, j] = gj * (out[b, j] - t[b, j])
