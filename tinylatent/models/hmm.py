"""Hidden Markov model with categorical or diagonal-Gaussian emissions (seed 000, latent
structure; Rabiner 1989, "A tutorial on hidden Markov models", Proc. IEEE 77(2)).

    p(x_1..x_T) = sum_z pi_{z_1} B_{z_1}(x_1) prod_{t>1} A_{z_{t-1} z_t} B_{z_t}(x_t)

Two ways to fit, one set of parameters (logits: pi = softmax(start_logits), A = row-softmax
(transition_logits), B = row-softmax(emission_logits) or N(means, exp(log_var))):
  * `fit(X, lengths)`: Baum-Welch EM (Rabiner eqs. 40a-c, 52-54), in float64 NumPy, with
    forward-backward in log space (a Numba kernel, kernels/numba/hmm.py, or the NumPy
    twin); `log_likelihoods_` is log p(X) before each M-step and never decreases. Same
    updates as hmmlearn (its default priors), so the same start gives the same path.
  * `loss(batch)`: -log p(x) per step by the forward algorithm in tl ops, for gradients.
Viterbi (Rabiner eqs. 30-35) decodes the most probable path.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

import tinylatent as tl
from tinylatent import nn
from tinylatent.distributions import Categorical, Normal
from tinylatent.tensor import Tensor

from .config import resolve_config

__all__ = ["HMM", "HMMConfig"]


@dataclass(frozen=True)
class HMMConfig:
    latent_features: int = 8        # K, the number of hidden states
    in_features: int = 27           # V symbols (categorical) or D dimensions (gaussian)
    emission: str = "categorical"   # "categorical" | "gaussian" (diagonal covariance)
    covar_prior: float = 1e-2       # added to each Gaussian variance's numerator in the M-step
    sample_length: int = 16         # T of `sample` when no length is given


@functools.lru_cache(maxsize=None)
def _kernels():
    from ..kernels.dispatch import load_numba_module
    return load_numba_module("tinylatent.kernels.numba.hmm")


def _logsumexp(a, axis):
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return np.squeeze(m, axis) + np.log(np.exp(a - m).sum(axis))


def _forward_backward_numpy(log_b, log_pi, log_a):
    """The reference: log alpha / log beta by a full logsumexp per step (Rabiner eqs. 19-25
    in log space). Returns (log p(x), gamma (T, K), xi summed over t (K, K))."""
    T, K = log_b.shape
    la, lb = np.empty((T, K)), np.zeros((T, K))
    la[0] = log_pi + log_b[0]
    for t in range(1, T):  # log a_t(j) = log B_t(j) + logsumexp_i(log a_{t-1}(i) + log A_ij)
        la[t] = log_b[t] + _logsumexp(la[t - 1][:, None] + log_a, 0)
    for t in range(T - 2, -1, -1):  # log b_t(i) = logsumexp_j(log A_ij + log B_t+1(j) + ..)
        lb[t] = _logsumexp(log_a + (log_b[t + 1] + lb[t + 1])[None, :], 1)
    loglik = float(_logsumexp(la[-1], 0))
    # xi_t(i, j) = a_t(i) A_ij B_{t+1}(j) b_{t+1}(j) / p(x), summed over t: (T-1, K, K) -> (K, K)
    log_xi = la[:-1, :, None] + log_a[None] + (log_b[1:] + lb[1:])[:, None, :] - loglik
    return loglik, np.exp(la + lb - loglik), np.exp(log_xi).sum(0)


def _split(X, lengths):
    n = len(X)
    lengths = [n] if lengths is None else [int(v) for v in lengths]
    if sum(lengths) != n or min(lengths) < 1:
        raise ValueError(f"HMM: lengths must be positive and sum to len(X) = {n}, got sum "
                         f"{sum(lengths)} (min {min(lengths)})")
    bounds = np.cumsum([0] + lengths)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


class HMM(nn.Module):
    """A K-state HMM; emissions categorical over V symbols or diagonal Gaussian in D dims."""

    def __init__(self, config: HMMConfig | None = None, *, generator=None, **overrides):
        super().__init__()
        cfg = self.config = resolve_config(self, HMMConfig, config, overrides)
        if cfg.emission not in ("categorical", "gaussian"):
            raise ValueError(f"HMM: emission must be 'categorical' or 'gaussian', got "
                             f"{cfg.emission!r}")
        K, V = cfg.latent_features, cfg.in_features
        self.start_logits = nn.Parameter(tl.zeros(K))
        # random logits break the symmetry that would make EM keep all states equal
        self.transition_logits = nn.Parameter(0.5 * tl.randn(K, K, generator=generator))
        if cfg.emission == "categorical":
            self.emission_logits = nn.Parameter(tl.randn(K, V, generator=generator))
        else:
            self.means = nn.Parameter(tl.randn(K, V, generator=generator))
            self.log_var = nn.Parameter(tl.zeros(K, V))

    # ------------------------------------------------------------ differentiable (tl ops)
    def emission_log_prob(self, x: Tensor) -> Tensor:
        """log B_k(x_t), (B, T, K), from x (B, T) ids or (B, T, D) values."""
        if self.config.emission == "categorical":
            if x.dtype.kind not in "iu" or x.ndim != 2:
                raise ValueError(f"HMM: categorical x must be (B, T) integer ids, got shape "
                                 f"{tuple(x.shape)} dtype {x.dtype}")
            return self.emission_logits.log_softmax(-1).T[x]  # (V, K)[x] -> (B, T, K)
        if x.ndim != 3 or x.shape[-1] != self.config.in_features:
            raise ValueError(f"HMM: gaussian x must be (B, T, {self.config.in_features}), got "
                             f"{tuple(x.shape)}")
        normal = Normal(self.means, (0.5 * self.log_var).exp())
        return normal.log_prob(x.unsqueeze(2)).sum(-1)  # (B, T, 1, D) vs (K, D) -> (B, T, K)

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x_1..x_T), (B,), by the forward algorithm in log space."""
        log_b = self.emission_log_prob(x)  # (B, T, K)
        log_a = self.transition_logits.log_softmax(-1)  # (K, K)
        la = self.start_logits.log_softmax(-1) + log_b[:, 0]  # (B, K)
        for t in range(1, log_b.shape[1]):  # (B, K, 1) + (K, K) -> logsumexp over i -> (B, K)
            la = (la.unsqueeze(2) + log_a).logsumexp(1) + log_b[:, t]
        return la.logsumexp(-1)

    def loss(self, batch: Tensor):
        """-log p(x) per time step (nats per symbol / per vector), averaged over the batch."""
        nll = -self.log_prob(batch).mean() / batch.shape[1]
        return nll, {"loss": nll.detach()}

    def sample(self, n: int, length: int | None = None, generator=None) -> Tensor:
        """n sequences: (n, T) ids or (n, T, D) vectors, T = length or config.sample_length."""
        T = length or self.config.sample_length
        with tl.no_grad():
            z = Categorical(logits=self.start_logits.expand(n, -1)).sample(generator=generator)
            out = []
            for t in range(T):
                if t:
                    z = Categorical(logits=self.transition_logits[z]).sample(generator=generator)
                if self.config.emission == "categorical":
                    out.append(Categorical(logits=self.emission_logits[z])
                               .sample(generator=generator))
                else:
                    eps = tl.randn(n, self.config.in_features, generator=generator)
                    out.append(self.means[z] + (0.5 * self.log_var[z]).exp() * eps)
            return tl.stack(out, 1)

    # ---------------------------------------------------------------- EM (float64 NumPy)
    def _params64(self):
        def logsoftmax(p):
            a = p.detach().numpy().astype(np.float64)
            return a - _logsumexp(a, -1)[..., None]
        if self.config.emission == "categorical":
            emis = (logsoftmax(self.emission_logits),)
        else:
            emis = (self.means.detach().numpy().astype(np.float64),
                    np.exp(self.log_var.detach().numpy().astype(np.float64)))
        return logsoftmax(self.start_logits), logsoftmax(self.transition_logits), emis

    def _check_x(self, X):
        A = np.asarray(X.detach().numpy() if isinstance(X, Tensor) else X)
        cfg = self.config
        if cfg.emission == "categorical":
            A = A.reshape(-1)
            if A.dtype.kind not in "iu" or (len(A) and (A.min() < 0 or A.max() >= cfg.in_features)):
                raise ValueError(f"HMM: categorical X must be integer ids in [0, "
                                 f"{cfg.in_features}), got dtype {A.dtype}")
            return A.astype(np.int64)
        if A.ndim != 2 or A.shape[1] != cfg.in_features:
            raise ValueError(f"HMM: gaussian X must be (N, {cfg.in_features}), got {A.shape}")
        return A.astype(np.float64)

    def _log_b(self, A, emis):
        if self.config.emission == "categorical":
            return emis[0].T[A]  # (V, K)[ids] -> (N, K)
        mu, var = emis  # (K, D) each; log N(x | mu_k, var_k) summed over d -> (N, K)
        return -0.5 * (np.log(2 * np.pi * var).sum(1)[None, :]
                       + (((A[:, None, :] - mu[None]) ** 2) / var[None]).sum(2))

    def forward_backward(self, X, lengths=None, params=None, use_numba: bool = True):
        """(log p(X), gamma (N, K), xi summed (K, K)) over the sequences of X."""
        A = self._check_x(X)
        log_pi, log_a, emis = params or self._params64()
        log_b = self._log_b(A, emis)
        kern = _kernels() if use_numba else None
        total, gamma, xi = 0.0, np.empty_like(log_b), np.zeros_like(log_a)
        for a, b in _split(A, lengths):
            if kern is not None:
                ll, g, x = kern.forward_backward(np.ascontiguousarray(log_b[a:b]), log_pi,
                                                 np.exp(log_a))
            else:
                ll, g, x = _forward_backward_numpy(log_b[a:b], log_pi, log_a)
            total, gamma[a:b], xi = total + ll, g, xi + x
        return total, gamma, xi

    def score(self, X, lengths=None) -> float:
        """log p(X) summed over the sequences (float64), as hmmlearn's `score`."""
        return self.forward_backward(X, lengths)[0]

    def fit(self, X, lengths=None, n_iter: int = 20, tol: float = 1e-4,
            use_numba: bool = True) -> "HMM":
        """Baum-Welch from the current parameters; stops after n_iter or when log p(X) gains
        less than tol. M-step (Rabiner eqs. 40a-c; variances as hmmlearn, with covar_prior):
            pi = sum_seq gamma_1 / #seq;  A_ij = sum_t xi_t(i,j) / sum_tj xi_t(i,j);
            B_kv = sum_t gamma_t(k)[x_t = v] / sum_t gamma_t(k);  mu_k = sum_t gamma_t(k) x_t / N_k;
            var_k = (covar_prior + sum_t gamma_t(k) (x_t - mu_k)^2) / N_k."""
        A = self._check_x(X)
        spans = _split(A, lengths)
        log_pi, log_a, emis = self._params64()
        self.log_likelihoods_, self.converged_ = [], False
        for _ in range(n_iter):
            ll, gamma, xi = self.forward_backward(A, lengths, (log_pi, log_a, emis), use_numba)
            self.log_likelihoods_.append(ll)
            if len(self.log_likelihoods_) > 1 and ll - self.log_likelihoods_[-2] < tol:
                self.converged_ = True
                break
            start = gamma[[a for a, _ in spans]].sum(0)
            rows = xi.sum(1, keepdims=True)  # a state never left keeps its old row
            trans = np.where(rows > 0, xi / np.where(rows > 0, rows, 1), np.exp(log_a))
            with np.errstate(divide="ignore"):
                log_pi, log_a = np.log(start / start.sum()), np.log(trans)
            nk = gamma.sum(0)  # (K,)
            if self.config.emission == "categorical":
                counts = np.zeros((self.config.in_features, len(nk)))  # (V, K)
                np.add.at(counts, A, gamma)
                with np.errstate(divide="ignore", invalid="ignore"):
                    emis = (np.log(counts.T / nk[:, None]),)
            else:
                obs, obs2 = gamma.T @ A, gamma.T @ (A * A)  # (K, D) each
                mu = obs / nk[:, None]
                var = (self.config.covar_prior + obs2 - 2 * mu * obs + mu ** 2 * nk[:, None]) \
                    / np.maximum(nk[:, None], 1e-5)
                emis = (mu, var)
        self._load64(log_pi, log_a, emis)
        return self

    def _load64(self, log_pi, log_a, emis):
        """Write float64 log-probabilities into the logits (floored at log 1e-300)."""
        def put(p, a):
            p.array[...] = np.maximum(np.nan_to_num(a, nan=-690.0), -690.0).astype(p.dtype)
        put(self.start_logits, log_pi)
        put(self.transition_logits, log_a)
        if self.config.emission == "categorical":
            put(self.emission_logits, emis[0])
        else:
            put(self.means, emis[0])
            put(self.log_var, np.log(emis[1]))

    def viterbi(self, X) -> tuple:
        """(log p(x, z*), z*) for one sequence: z* = argmax_z p(z | x) (Rabiner eqs. 32-35)."""
        A = self._check_x(X)
        log_pi, log_a, emis = self._params64()
        log_b = self._log_b(A, emis)
        T, K = log_b.shape
        delta, psi = log_pi + log_b[0], np.zeros((T, K), dtype=np.int64)
        for t in range(1, T):
            cand = delta[:, None] + log_a  # (K, K): from i to j
            psi[t] = cand.argmax(0)
            delta = cand[psi[t], np.arange(K)] + log_b[t]
        path = np.empty(T, dtype=np.int64)
        path[-1] = int(delta.argmax())
        for t in range(T - 1, 0, -1):
            path[t - 1] = psi[t, path[t]]
        return float(delta.max()), path

    def predict(self, X) -> np.ndarray:
        """The Viterbi path of one sequence, (T,)."""
        return self.viterbi(X)[1]

    def bits_per_symbol(self, X, lengths=None) -> float:
        """-log2 p(X) / N: the held-out figure of a character model."""
        return -self.score(X, lengths) / (len(self._check_x(X)) * math.log(2))
