"""The partition function of a binary RBM: exactly by enumeration (small models) and by
annealed importance sampling (Neal 2001; Salakhutdinov & Murray 2008, "On the quantitative
analysis of deep belief networks", Sec. 3-4).

The RBM E(v, h) = -v.b - h.c - h W v with W (H, V) has, with h summed out,

    p*(v) = exp(v.b) prod_j (1 + exp(c_j + W_j v)),   log p*(v) = v.b + sum_j softplus(c_j + W_j v)

and, with v summed out, p*(h) = exp(h.c) prod_i (1 + exp(b_i + (h W)_i)). So
log Z = logsumexp over the 2^H hidden states of  h.c + sum_i softplus(b_i + (h W)_i)
(`exact_log_partition`, feasible for H <= ~20 whatever V is).

AIS (S&M 2008, Eq. 10-13) anneals from a base model p_A(v) = prod_i Bern(v_i; sigmoid(b^A_i))
and H independent uniform hidden units (log Z_A = sum_i softplus(b^A_i) + H log 2) to the
RBM through

    log p*_k(v) = (1 - beta_k) v.b^A + beta_k v.b + sum_j softplus(beta_k (c_j + W_j v)),

0 = beta_0 < ... < beta_K = 1. Each chain carries log w = sum_k log p*_k(v_k) - log p*_{k-1}(v_k),
where v_{k+1} comes from one Gibbs sweep leaving p_k invariant (h ~ sigmoid(beta_k (W v + c)),
v ~ sigmoid((1 - beta_k) b^A + beta_k (h W + b))). Then E[w] = Z_B / Z_A:
log Z ~= log Z_A + log mean_m w_m. The estimate is unbiased in Z, so log Z is, in expectation,
an underestimate (Jensen), and AIS test log-likelihoods tend to be optimistic.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

import tinylatent as tl
from tinylatent.tensor import Tensor

__all__ = ["AISResult", "ais_betas", "ais_log_partition", "exact_log_partition"]


class AISResult(NamedTuple):
    log_z: float              # log Z_A + log mean w
    log_z_low: float          # log(mean w - 3 sd/sqrt(M)) + log Z_A (-inf if negative), S&M Sec. 4
    log_z_high: float         # log(mean w + 3 sd/sqrt(M)) + log Z_A
    log_weights: np.ndarray   # (M,) log w per chain


def _host(t) -> np.ndarray:
    return t.detach().numpy_host().astype(np.float64) if isinstance(t, Tensor) \
        else np.asarray(t, dtype=np.float64)


def exact_log_partition(weight, v_bias, h_bias, chunk: int = 4096) -> float:
    """log Z of the binary RBM (W (H, V), b (V,), c (H,)) by enumerating the 2^H hidden
    states in float64 (the visible units summed out analytically)."""
    W, b, c = _host(weight), _host(v_bias), _host(h_bias)
    H = W.shape[0]
    if W.shape != (H, b.shape[0]) or c.shape != (H,):
        raise ValueError(f"exact_log_partition: need weight (H, V), v_bias (V,), h_bias (H,); "
                         f"got {W.shape}, {b.shape}, {c.shape}")
    if H > 24:
        raise ValueError(f"exact_log_partition: 2^{H} hidden states is too many to enumerate "
                         "(H <= 24); use ais_log_partition")
    terms = []
    for start in range(0, 2 ** H, chunk):
        idx = np.arange(start, min(start + chunk, 2 ** H))
        h = ((idx[:, None] >> np.arange(H)[None, :]) & 1).astype(np.float64)   # (n, H)
        terms.append(h @ c + np.logaddexp(0.0, b + h @ W).sum(axis=1))
    t = np.concatenate(terms)
    return float(t.max() + np.log(np.exp(t - t.max()).sum()))


def ais_betas(num_betas: int) -> np.ndarray:
    """S&M 2008's schedule scaled to `num_betas` steps: uniform in steps of 1e-3 on [0, 0.5],
    1e-4 on [0.5, 0.9], 1e-5 on [0.9, 1] at 14,500 steps, i.e. 500 : 4,000 : 10,000."""
    if num_betas < 3:
        raise ValueError(f"ais_betas: need num_betas >= 3, got {num_betas}")
    n1 = max(1, round(num_betas * 500 / 14500))
    n2 = max(1, round(num_betas * 4000 / 14500))
    n3 = max(1, num_betas - n1 - n2)
    return np.concatenate([np.linspace(0.0, 0.5, n1, endpoint=False),
                           np.linspace(0.5, 0.9, n2, endpoint=False),
                           np.linspace(0.9, 1.0, n3 + 1)])


def ais_log_partition(weight: Tensor, v_bias: Tensor, h_bias: Tensor,
                      base_v_bias: Tensor | None = None, num_chains: int = 100,
                      num_betas: int = 14500, generator=None) -> AISResult:
    """Estimate log Z of the RBM (W (H, V), b (V,), c (H,)) by AIS from the base-rate model
    with visible biases `base_v_bias` (S&M use the data's log-odds; default 0, the uniform
    distribution). Runs on the weight's device; `generator` draws the chains."""
    W, b, c = weight.detach(), v_bias.detach(), h_bias.detach()
    H, V = W.shape
    if b.shape != (V,) or c.shape != (H,):
        raise ValueError(f"ais_log_partition: need weight (H, V), v_bias (V,), h_bias (H,); "
                         f"got {W.shape}, {b.shape}, {c.shape}")
    bA = tl.zeros(V, dtype=W.dtype, device=W.device) if base_v_bias is None \
        else base_v_bias.detach().to(W.device)
    if bA.shape != (V,):
        raise ValueError(f"ais_log_partition: base_v_bias must be ({V},), got {bA.shape}")
    betas = ais_betas(num_betas)
    # p*_0(v) = exp(v.b^A) 2^H: the H hidden units at beta = 0 are uniform and independent
    log_za = float(_host(tl.softplus(bA)).sum()) + H * math.log(2.0)
    with tl.no_grad():
        v = tl.bernoulli(tl.sigmoid(bA).expand(num_chains, V).contiguous(), generator=generator)
        log_w = np.zeros(num_chains)
        for k in range(1, len(betas)):
            b_prev, b_k = float(betas[k - 1]), float(betas[k])
            wx = tl.linear(v, W, c)                                     # (M, H)
            # log p*_k(v_k) - log p*_{k-1}(v_k): the base terms change by (b_prev - b_k) v.b^A
            delta = (b_k - b_prev) * (v @ (b - bA)) + \
                (tl.softplus(wx * b_k) - tl.softplus(wx * b_prev)).sum(axis=1)
            log_w += _host(delta)
            # one Gibbs sweep that leaves p_k invariant
            h = tl.bernoulli(tl.sigmoid(wx * b_k), generator=generator)
            v = tl.bernoulli(tl.sigmoid(bA * (1.0 - b_k) + (h @ W + b) * b_k),
                             generator=generator)
    m = log_w.max()
    w = np.exp(log_w - m)
    mean, sd = w.mean(), w.std() / math.sqrt(num_chains)
    low = m + math.log(mean - 3 * sd) if mean > 3 * sd else -math.inf
    return AISResult(log_za + m + math.log(mean), log_za + low,
                     log_za + m + math.log(mean + 3 * sd), log_w)
