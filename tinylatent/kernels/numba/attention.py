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


# ---------------------------------------------------------------------- fused attention
# The twin of kernels/cuda/flash_attention.cu on the CPU: the same (out, lse) interface and
# formulas, blocked over the queries so that at most FLASH_ROWS x Tk scores exist at once
# (memory O(FLASH_ROWS Tk + T D) instead of O(Tq Tk) per sequence); BLAS does the products.
FLASH_ROWS = 128


def _flash_scores(q_blk, k_n, i0, scale, causal):
    """scale q k^T for queries i0.. of one sequence, -inf where causal masks j > i."""
    s = (q_blk @ k_n.T) * q_blk.dtype.type(scale)                 # (rows, Tk)
    if causal:
        i = np.arange(i0, i0 + len(q_blk))[:, None]
        s[np.arange(s.shape[1])[None, :] > i] = -np.inf
    return s


def flash_attention(q, k, v, scale, causal):
    """(out (N, Tq, Dv), lse (N, Tq)) of softmax(scale q k^T [causal]) v."""
    n, tq, _ = q.shape
    out = np.zeros((n, tq, v.shape[2]), q.dtype)
    lse = np.full((n, tq), -np.inf, q.dtype)
    if k.shape[1] == 0:
        return out, lse
    for b in range(n):
        for i0 in range(0, tq, FLASH_ROWS):
            s = _flash_scores(q[b, i0: i0 + FLASH_ROWS], k[b], i0, scale, causal)
            m = s.max(axis=1, keepdims=True)
            p = np.exp(s - m)
            tot = p.sum(axis=1, keepdims=True)
            out[b, i0: i0 + FLASH_ROWS] = (p @ v[b]) / tot
            lse[b, i0: i0 + FLASH_ROWS] = (m + np.log(tot))[:, 0]
    return out, lse


def flash_attention_backward(q, k, v, out, lse, dout, scale, causal):
    """(dq, dk, dv) from the saved (out, lse): P recomputed block by block,
    D_i = dout_i . out_i, dS = P (dout v^T - D), dq = scale dS k, dk = scale dS^T q,
    dv = P^T dout."""
    n, tq, _ = q.shape
    dq, dk, dv = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
    if k.shape[1] == 0:
        return dq, dk, dv
    sc = q.dtype.type(scale)
    drow = (dout * out).sum(axis=2)                               # (N, Tq)
    for b in range(n):
        for i0 in range(0, tq, FLASH_ROWS):
            rows = slice(i0, i0 + FLASH_ROWS)
            s = _flash_scores(q[b, rows], k[b], i0, scale, causal)
            p = np.exp(s - lse[b, rows, None])                    # (rows, Tk)
            dv[b] += p.T @ dout[b, rows]
            ds = p * (dout[b, rows] @ v[b].T - drow[b, rows, None])
            dq[b, rows] = sc * (ds @ k[b])
            dk[b] += sc * (ds.T @ q[b, rows])
    return dq, dk, dv
