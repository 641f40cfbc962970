"""Numba CPU kernels for fused scaled-dot-product attention: the masked row softmax and its
backward, one pass per row. The two batched products (q k^T and A v, and their four
gradient products) go to BLAS through numpy matmul.

    forward:   P_ij = exp(s_ij - m_i) / sum_j' exp(s_ij' - m_i)   over kept j, else 0
    backward:  dS_ij = P_ij (dP_ij - sum_j' dP_ij' P_ij')          (softmax Jacobian)
"""
from __future__ import annotations

import math

import numba as nb

_JIT = dict(nopython=True, cache=True, nogil=True)


@nb.jit(**_JIT)
def masked_softmax(s, scale, keep, has_keep, causal, cutoff):
    """In place: s (N, Tq, Tk) raw scores -> softmax(scale * s) over kept keys.

    keep (N, Tq, Tk) uint8 (1 = keep) when has_keep; causal keeps j <= i. A row with no kept
    key becomes all zeros. `cutoff` (about log of the smallest normal float) flushes tiny
    weights to 0 so no denormal ever enters the products.
    """
    n, tq, tk = s.shape
    for b in range(n):
        for i in range(tq):
            m = -math.inf
            for j in range(tk):
                ok = (not causal or j <= i) and (not has_keep or keep[b, i, j] != 0)
                if ok:
                    v = s[b, i, j] * scale
                    s[b, i, j] = v
                    if v > m:
                        m = v
                else:
                    s[b, i, j] = -math.inf
            if m == -math.inf:
                for j in range(tk):
                    s[b, i, j] = 0.0
                continue
            tot = 0.0
            for j in range(tk):
                d = s[b, i, j] - m
                e = math.exp(d) if d > cutoff else 0.0
                s[b, i, j] = e
                tot += e
            inv = 1.0 / tot
            for j in range(tk):
                s[b, i, j] *= inv


@nb.jit(**_JIT)
def softmax_backward(p, dp, scale):
    """In place: dp <- scale * p * (dp - sum_j dp * p) row by row (the grad of the scores
    before scaling, so dQ = dS K and dK = dS^T Q)."""
    n, tq, tk = p.shape
    for b in range(n):
        for i in range(tq):
            dot = 0.0
            for j in range(tk):
                dot += dp[b, i, j] * p[b, i, j]
            for j in range(tk):
                dp[b, i, j] = scale * p[b, i, j] * (dp[b, i, j] - dot)
