"""Numba kernels of the HMM's forward-backward pass (tinylatent/models/hmm.py loads them, not
the KernelBackend); the NumPy twin `hmm._forward_backward_numpy` is the reference
(tests/test_hmm.py checks they agree).

Log space with one shift per step instead of a K x K logsumexp: with m = max_i log a_{t-1}(i),
    log a_t(j) = log B_t(j) + m + log sum_i exp(log a_{t-1}(i) - m) A_ij,
so each step costs K exps and a K x K multiply-add (the K^2 exps of the full logsumexp are
what made the loop slow); the same shift is used in the backward pass and for xi.
Terms more than ~745 nats below the step's largest underflow to 0, as they would in the
logsumexp's own sum.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def forward_backward(log_b, log_pi, trans):  # pragma: no cover - compiled
    """log_b (T, K) log p(x_t | z_t = k); log_pi (K,); trans (K, K) = A (probabilities).
    Returns log p(x_1..x_T), gamma (T, K) = p(z_t | x), xi_sum (K, K) = sum_t p(z_t, z_t+1 | x).
    """
    T, K = log_b.shape
    la = np.empty((T, K))
    lb = np.empty((T, K))
    p = np.empty(K)
    for k in range(K):
        la[0, k] = log_pi[k] + log_b[0, k]
    for t in range(1, T):
        m = -np.inf
        for i in range(K):
            m = max(m, la[t - 1, i])
        for i in range(K):
            p[i] = math.exp(la[t - 1, i] - m)
        for j in range(K):
            s = 0.0
            for i in range(K):
                s += p[i] * trans[i, j]
            la[t, j] = log_b[t, j] + m + (math.log(s) if s > 0 else -np.inf)
    m = -np.inf
    for k in range(K):
        m = max(m, la[T - 1, k])
    s = 0.0
    for k in range(K):
        s += math.exp(la[T - 1, k] - m)
    loglik = m + math.log(s)
    for k in range(K):
        lb[T - 1, k] = 0.0
    xi = np.zeros((K, K))
    q = np.empty(K)
    for t in range(T - 2, -1, -1):
        m = -np.inf
        for j in range(K):
            m = max(m, log_b[t + 1, j] + lb[t + 1, j])
        for j in range(K):
            q[j] = math.exp(log_b[t + 1, j] + lb[t + 1, j] - m)
        ma = -np.inf
        for i in range(K):
            ma = max(ma, la[t, i])
        c = math.exp(ma + m - loglik)
        for i in range(K):
            s = 0.0
            a_i = math.exp(la[t, i] - ma) * c
            for j in range(K):
                s += trans[i, j] * q[j]
                xi[i, j] += a_i * trans[i, j] * q[j]
            lb[t, i] = m + (math.log(s) if s > 0 else -np.inf)
    gamma = np.empty((T, K))
    for t in range(T):
        for k in range(K):
            gamma[t, k] = math.exp(la[t, k] + lb[t, k] - loglik)
    return loglik, gamma, xi
