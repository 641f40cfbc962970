"""Numba CPU kernels for row-wise logsumexp and the contrastive (InfoNCE / NT-Xent)
cross-entropy over a similarity matrix, each one pass per row.

    lse_i  = m_i + log sum_j exp(x_ij - m_i),            m_i = max_j x_ij
    loss_i = lse_i(S_i / tau, diagonal masked if asked) - S_i,pos(i) / tau
    P_ij   = exp(S_ij / tau - lse_i)         (kept in place of S for the backward)

`cutoff` (about the log of the smallest normal float) flushes weights that would be
denormal to exactly 0: denormal arithmetic is ~100x slower on x86 and changes nothing here.
"""
from __future__ import annotations

import math

import numba as nb

_JIT = dict(nopython=True, cache=True, nogil=True)


@nb.jit(**_JIT)
def row_logsumexp(x, out, mx, tot, cutoff):
    """out[i] = logsumexp(x[i, :]) = mx[i] + log tot[i]; +-inf rows give +-inf.

    mx and tot are kept for the backward: exp(x - mx) / tot is the softmax to full
    precision, where exp(x - out) would lose digits to the rounding of a large `out`."""
    n, k = x.shape
    for i in range(n):
        m = -math.inf
        for j in range(k):
            if x[i, j] > m:
                m = x[i, j]
        if m == -math.inf or m == math.inf:
            out[i] = m
            mx[i] = m
            tot[i] = 1.0
            continue
        t = 0.0
        for j in range(k):
            d = x[i, j] - m
            if d > cutoff:
                t += math.exp(d)
        out[i] = m + math.log(t)
        mx[i] = m
        tot[i] = t


@nb.jit(**_JIT)
def row_logsumexp_backward(x, mx, tot, g, gx, cutoff):
    """gx[i, j] = g[i] * exp(x[i, j] - mx[i]) / tot[i]  (the softmax; 0 on infinite rows)."""
    n, k = x.shape
    for i in range(n):
        m = mx[i]
        finite = m != math.inf and m != -math.inf
        gi = g[i] / tot[i]
        for j in range(k):
            d = x[i, j] - m
            gx[i, j] = gi * math.exp(d) if finite and d > cutoff else 0.0


@nb.jit(**_JIT)
def row_cross_entropy(s, inv_tau, shift, mask_diag, loss, cutoff):
    """In place: s (R, C) similarities -> softmax P of s * inv_tau (diag masked if asked);
    loss[i] = lse_i - s[i, (i + shift) % C] * inv_tau."""
    r, c = s.shape
    for i in range(r):
        pos = (i + shift) % c
        m = -math.inf
        for j in range(c):
            if mask_diag and j == i:
                continue
            v = s[i, j] * inv_tau
            if v > m:
                m = v
        tot = 0.0
        for j in range(c):
            if mask_diag and j == i:
                continue
            d = s[i, j] * inv_tau - m
            if d > cutoff:
                tot += math.exp(d)
        loss[i] = m + math.log(tot) - s[i, pos] * inv_tau
        inv = 1.0 / tot
        for j in range(c):
            if mask_diag and j == i:
                s[i, j] = 0.0
                continue
            d = s[i, j] * inv_tau - m
            s[i, j] = math.exp(d) * inv if d > cutoff else 0.0


@nb.jit(**_JIT)
def cross_entropy_grad(p, g, inv_tau, shift, symmetric, out):
    """G_ij = g_i inv_tau (P_ij - [j == pos i]); with `symmetric` returns G + G^T (the
    gradient w.r.t. z z^T's factor when both sides are the same matrix)."""
    r, c = p.shape
    if not symmetric:
        for i in range(r):
            gi = g[i] * inv_tau
            pos = (i + shift) % c
            for j in range(c):
                out[i, j] = gi * p[i, j]
            out[i, pos] -= gi
        return
    for i in range(r):
        gi = g[i] * inv_tau
        for j in range(i, c):
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
        inv = 1.0 / nr
        for j in range(d):
            zn[i, j] = z[i, j] * inv


@nb.jit(**_JIT)
def normalize_rows_backward(gzn, zn, norm, eps, gz):
    """gz = (gzn - zn <gzn, zn>) / ||z|| (the projection off the radial direction); where
    the norm was clamped at eps the map is z / eps, whose gradient is gzn / eps."""
    n, d = zn.shape
    for i in range(n):
        inv = 1.0 / norm[i]
        if norm[i] <= eps:
            for j in range(d):
                gz[i, j] = gzn[i, j] * inv
            continue
        dot = 0.0
        for j in range(d):
            dot += gzn[i, j] * zn[i, j]
        for j in range(d):
            gz[i, j] = (gzn[i, j] - zn[i, j] * dot) * inv
