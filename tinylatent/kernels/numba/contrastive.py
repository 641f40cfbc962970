"""Numba CPU kernels for row-wise logsumexp and the contrastive (InfoNCE / NT-Xent)
cross-entropy over a similarity matrix, one row at a time (a row stays in L1 across its few
sweeps, and each sweep vectorizes: exp is the vectorizable `fexp`).

    lse_i  = m_i + log sum_j exp(x_ij - m_i),            m_i = max_j x_ij
    loss_i = lse_i(S_i / tau, diagonal masked if asked) - S_i,pos(i) / tau
    P_ij   = exp(S_ij / tau - m_i) / sum_j' exp(S_ij' / tau - m_i)   (written over S)

The backward keeps m_i and the sum rather than lse_i: exp(x - m) / sum is the softmax to
full precision, where exp(x - lse) loses digits to the rounding of a large lse in float32.
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

from ._math import fexp

_JIT = dict(nopython=True, cache=True, nogil=True,
            fastmath={"reassoc", "contract", "nsz", "arcp"})


@nb.jit(**_JIT)
def row_logsumexp(x, out, mx, tot):
    """out[i] = logsumexp(x[i, :]) = mx[i] + log tot[i]; +-inf rows give +-inf."""
    n, k = x.shape
    inf = x.dtype.type(np.inf)
    for i in range(n):
        r = x[i]
        m = -inf
        for j in range(k):
            m = max(m, r[j])
        if m == -inf or m == inf:
            out[i] = m
            mx[i] = m
            tot[i] = 1.0
            continue
        t = 0.0
        for j in range(k):
            t += fexp(r[j] - m)
        out[i] = m + math.log(t)
        mx[i] = m
        tot[i] = t


@nb.jit(**_JIT)
def row_logsumexp_backward(x, mx, tot, g, gx):
    """gx[i, j] = g[i] * exp(x[i, j] - mx[i]) / tot[i]  (the softmax; 0 on infinite rows)."""
    n, k = x.shape
    inf = x.dtype.type(np.inf)
    for i in range(n):
        m = mx[i]
        if m == inf or m == -inf:
            for j in range(k):
                gx[i, j] = 0.0
            continue
        gi = g[i] / tot[i]
        for j in range(k):
            gx[i, j] = gi * fexp(x[i, j] - m)


@nb.jit(**_JIT)
def row_cross_entropy(s, inv_tau, shift, mask_diag, loss):
    """In place: s (R, C) similarities -> softmax P of s * inv_tau (diag masked if asked);
    loss[i] = lse_i - s[i, (i + shift) % C] * inv_tau."""
    r_, c = s.shape
    neg_inf = s.dtype.type(-np.inf)
    for i in range(r_):
        r = s[i]
        for j in range(c):
            r[j] = r[j] * inv_tau
        target = r[(i + shift) % c]
        if mask_diag:
            r[i] = neg_inf
        m = neg_inf
        for j in range(c):
            m = max(m, r[j])
        tot = 0.0
        for j in range(c):
            e = fexp(r[j] - m)
            r[j] = e
            tot += e
        loss[i] = m + math.log(tot) - target
        inv = r.dtype.type(1.0 / tot)
        for j in range(c):
            r[j] = r[j] * inv


@nb.jit(**_JIT)
def cross_entropy_grad(p, g, inv_tau, shift, symmetric, out):
    """G_ij = g_i inv_tau (P_ij - [j == pos i]); with `symmetric` returns G + G^T (the
    gradient w.r.t. z z^T's factor when both sides are the same matrix)."""
    r, c = p.shape
    if not symmetric:
        for i in range(r):
            gi = g[i] * inv_tau
            for j in range(c):
                out[i, j] = gi * p[i, j]
            out[i, (i + shift) % c] -= gi
        return
    # Blocked so both p[i, j] and p[j, i] are read from cache.
    bs = 64
    for i0 in range(0, r, bs):
        for j0 in range(i0, c, bs):
            for i in range(i0, min(i0 + bs, r)):
                gi = g[i] * inv_tau
                for j in range(max(j0, i), min(j0 + bs, c)):
                    v = gi * p[i, j] + g[j] * inv_tau * p[j, i]
                    out[i, j] = v
                    out[j, i] = v
    for i in range(r):
        pos = (i + shift) % c
        gi = g[i] * inv_tau
        out[i, pos] -= gi
        out[pos, i] -= gi


@nb.jit(**_JIT)
def normalize_rows(z, zn, norm, eps):
    """zn = z / max(||z_i||, eps), norm[i] = max(||z_i||, eps)."""
    n, d = z.shape
    for i in range(n):
        s = 0.0
        for j in range(d):
            s += z[i, j] * z[i, j]
        nr = max(math.sqrt(s), eps)
        norm[i] = nr
        inv = 1.0 / nr   # float64: z * inv rounds once, so a 1-D row comes out exactly +-1
        for j in range(d):
            zn[i, j] = z[i, j] * inv


@nb.jit(**_JIT)
def normalize_rows_backward(gzn, zn, norm, eps, gz):
    """gz = (gzn - zn <gzn, zn>) / ||z|| (the projection off the radial direction); where
    the norm was clamped at eps the map is z / eps, whose gradient is gzn / eps."""
    n, d = zn.shape
    for i in range(n):
        inv = gz.dtype.type(1.0 / norm[i])
        if norm[i] <= eps:
            for j in range(d):
                gz[i, j] = gzn[i, j] * inv
            continue
        dot = 0.0
        for j in range(d):
            dot += gzn[i, j] * zn[i, j]
        dt = gz.dtype.type(dot)
        for j in range(d):
            gz[i, j] = (gzn[i, j] - zn[i, j] * dt) * inv
