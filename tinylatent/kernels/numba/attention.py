"""Numba CPU kernels for fused scaled-dot-product attention: the masked row softmax and its
backward, one pass per row (each row stays in L1 across its few sweeps). The batched
products (q k^T, A v and the four gradient products) go to BLAS through numpy matmul.

    forward:   P_ij = exp(s_ij - m_i) / sum_j' exp(s_ij' - m_i)   over kept j, else 0
    backward:  dS_ij = scale P_ij (dP_ij - sum_j' dP_ij' P_ij')   (softmax Jacobian)
"""
from __future__ import annotations

import numba as nb
import numpy as np

from ._math import fexp

_JIT = dict(nopython=True, cache=True, nogil=True,
            fastmath={"reassoc", "contract", "nsz", "arcp"})


@nb.jit(**_JIT)
def masked_softmax(s, scale, keep, has_keep, causal):
    """In place: s (N, Tq, Tk) raw scores -> softmax(scale * s) over kept keys.

    keep (N, Tq, Tk) uint8 (1 = keep) when has_keep; causal keeps j <= i. A row with no
    kept key becomes all zeros. `scale` has s's dtype, so float32 stays float32.
    """
    n, tq, tk = s.shape
    neg_inf = s.dtype.type(-np.inf)
    for b in range(n):
        for i in range(tq):
            r = s[b, i]
            for j in range(tk):
                r[j] = r[j] * scale
            if has_keep:
                kr = keep[b, i]
                for j in range(tk):
                    if kr[j] == 0:
                        r[j] = neg_inf
            if causal:
                for j in range(i + 1, tk):
                    r[j] = neg_inf
            m = neg_inf
            for j in range(tk):
                m = max(m, r[j])
            if m == neg_inf:
                for j in range(tk):
                    r[j] = 0.0
                continue
            tot = 0.0
            for j in range(tk):
                e = fexp(r[j] - m)
                r[j] = e
                tot += e
            inv = r.dtype.type(1.0 / tot)
            for j in range(tk):
                r[j] = r[j] * inv


@nb.jit(**_JIT)
def softmax_backward(p, dp, scale):
    """In place: dp <- scale * p * (dp - sum_j dp * p) row by row (the grad of the scores
    before scaling, so dQ = dS K and dK = dS^T Q)."""
    n, tq, tk = p.shape
    for b in range(n):
        for i in range(tq):
            pr = p[b, i]
            dr = dp[b, i]
            dot = 0.0
            for j in range(tk):
                dot += dr[j] * pr[j]
            d = dr.dtype.type(dot)
            for j in range(tk):
                dr[j] = scale * pr[j] * (dr[j] - d)
