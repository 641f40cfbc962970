"""Numba kernel of LDA's E-step (tinylatent/models/lda.py), one document at a time as in
Blei et al. 2003 Fig. 6 / Hoffman et al. 2010 Alg. 1; the vectorised NumPy E-step in lda.py
is its twin (tests/test_lda.py checks they agree). Work per pass: sum_d iters_d x nnz_d x K.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def digamma(x):  # pragma: no cover - compiled
    """psi(x) for x > 0: the recurrence psi(x) = psi(x + 1) - 1/x up to x >= 6, then the
    asymptotic series log x - 1/(2x) - sum B_2n / (2n x^2n) (error < 1e-15 there)."""
    r = 0.0
    while x < 6.0:
        r -= 1.0 / x
        x += 1.0
    f = 1.0 / (x * x)
    t = f * (-1.0 / 12 + f * (1.0 / 120 + f * (-1.0 / 252 + f * (1.0 / 240 + f * (-1.0 / 132)))))
    return r + math.log(x) - 0.5 / x + t


@njit(cache=True)
def _exp_e_log(g, out):  # pragma: no cover - compiled
    s = 0.0
    for k in range(g.shape[0]):
        s += g[k]
    ds = digamma(s)
    for k in range(g.shape[0]):
        out[k] = math.exp(digamma(g[k]) - ds)


@njit(cache=True)
def _normaliser(eth, beta_w, eps):  # pragma: no cover - compiled
    """phi_dwk's normaliser: eps + sum_k exp(E log theta_dk) beta_kw."""
    s = eps
    for k in range(eth.shape[0]):
        s += eth[k] * beta_w[k]
    return s


@njit(cache=True)
def e_step(indptr, indices, counts, beta_t, gamma, alpha, max_iter, tol, eps,
           want_sstats):  # pragma: no cover - compiled
    """gamma (D, K) updated in place from its initial value; returns sum_d n_dw / norm_dw
    exp(E log theta_dk) as (V, K) (zeros unless want_sstats)."""
    D, K = gamma.shape
    sstats = np.zeros((beta_t.shape[0], K))
    eth = np.empty(K)
    acc = np.empty(K)
    for d in range(D):
        a, b = indptr[d], indptr[d + 1]
        g = gamma[d].copy()
        _exp_e_log(g, eth)
        for _ in range(max_iter):
            acc[:] = 0.0
            for j in range(a, b):
                w = indices[j]
                r = counts[j] / _normaliser(eth, beta_t[w], eps)
                for k in range(K):
                    acc[k] += r * beta_t[w, k]
            change = 0.0
            for k in range(K):
                new = alpha + eth[k] * acc[k]
                change += abs(new - g[k])
                g[k] = new
            _exp_e_log(g, eth)
            if change / K < tol:
                break
        gamma[d] = g
        if want_sstats:
            for j in range(a, b):
                w = indices[j]
                r = counts[j] / _normaliser(eth, beta_t[w], eps)
                for k in range(K):
                    sstats[w, k] += eth[k] * r
    return sstats
