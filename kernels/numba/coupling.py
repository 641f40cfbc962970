"""Numba CPU kernels for the affine coupling layer (RealNVP / Glow), one pass each way.

    forward:  y = x * exp(log_s) + t,  ld_b = sum_k log_s[b, k]
    inverse:  x = (y - t) * exp(-log_s),  ld_b = -sum_k log_s[b, k]
    backward of forward, given gy and gld:   gx = gy e,  glog_s = gy (y - t) + gld,  gt = gy
    backward of inverse, given gx and gld:   gy = gx / e,  glog_s = -gx x - gld,  gt = -gx / e
with e = exp(log_s). Rows are (B, K) views of contiguous arrays.
"""
from __future__ import annotations

import math

import numba as nb

_JIT = dict(nopython=True, cache=True, nogil=True)


@nb.jit(**_JIT)
def coupling_forward(x, log_s, t, inverse, out, ld):
    bsz, k = x.shape
    for b in range(bsz):
        acc = 0.0
        for j in range(k):
            ls = log_s[b, j]
            acc += ls
            if inverse:
                out[b, j] = (x[b, j] - t[b, j]) * math.exp(-ls)
            else:
                out[b, j] = x[b, j] * math.exp(ls) + t[b, j]
        ld[b] = -acc if inverse else acc


@nb.jit(**_JIT)
def coupling_backward(g, gld, out, log_s, t, inverse, g_in, g_ls, g_t):
    """`out` is the forward's output (y for forward, x for inverse); needs no input copy."""
    bsz, k = g.shape
    for b in range(bsz):
        gl = gld[b]
        for j in range(k):
            gj = g[b, j]
            if inverse:
                r = math.exp(-log_s[b, j])
                g_in[b, j] = gj * r
                g_t[b, j] = -gj * r
                g_ls[b, j] = -gj * out[b, j] - gl
            else:
                g_in[b, j] = gj * math.exp(log_s[b, j])
                g_t[b, j] = gj
                g_ls[b, j] = gj * (out[b, j] - t[b, j]) + gl
