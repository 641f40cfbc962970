"""Gaussian mixture model fitted by expectation-maximisation (seed 004), on the tensor's own
array module (NumPy / CuPy) in float64. Also importable from tinylatent.models.classical.

    gmm = GaussianMixture(5, covariance_type="full", n_init=5, seed=0).fit(X)  # X: (N, D)
    gmm.log_likelihoods_     # mean log p(x) after each E-step: never decreases
    gmm.score(X_test), gmm.predict(X_test)
"""
from __future__ import annotations

import math

import numpy as np

from ..tensor import Tensor
from .classical import KMeans, _as_2d, _rng_for, _xp, squared_distances

__all__ = ["GaussianMixture"]


class GaussianMixture:
    """Mixture of K Gaussians fitted by expectation-maximisation (seed 004).

    E-step: r_ik = pi_k N(x_i | mu_k, S_k) / sum_j pi_j N(x_i | mu_j, S_j)  (in log space).
    M-step: N_k = sum_i r_ik;  pi_k = N_k / N;  mu_k = sum_i r_ik x_i / N_k;
            S_k = sum_i r_ik (x_i - mu_k)(x_i - mu_k)^T / N_k + reg_covar I  ("full"),
            or its diagonal ("diag").
    Each iteration cannot lower the average log-likelihood (1/N) sum_i log p(x_i), which
    is recorded in `log_likelihoods_` (one entry per E-step).

    EM only finds a local optimum, so the start matters. As in scikit-learn, `init_params`
    picks it: "kmeans" (default) runs K-means (k-means++ seeding + Lloyd) and takes its hard
    assignments as the first responsibilities; "k-means++" takes the k-means++ centres
    (Arthur & Vassilvitskii 2007) as means and assigns each point to the nearest; "random"
    draws responsibilities uniformly and normalises them. `n_init` restarts EM from that many
    such starts (seeds drawn from `seed`) and keeps the run with the highest final average
    log-likelihood. weights_init / means_init / covariances_init override the start (then
    every restart is the same, so n_init > 1 is pointless but harmless).
    """

    def __init__(self, n_components: int = 1, covariance_type: str = "full",
                 max_iter: int = 100, tol: float = 1e-3, reg_covar: float = 1e-6,
                 seed: int | None = None, weights_init=None, means_init=None,
                 covariances_init=None, n_init: int = 1, init_params: str = "kmeans"):
        if covariance_type not in ("full", "diag"):
            raise ValueError(f"GaussianMixture: covariance_type must be 'full' or 'diag', "
                             f"got {covariance_type!r}")
        if init_params not in ("kmeans", "k-means++", "random"):
            raise ValueError("GaussianMixture: init_params must be 'kmeans', 'k-means++' or "
                             f"'random', got {init_params!r}")
        if n_init < 1:
            raise ValueError(f"GaussianMixture: n_init must be >= 1, got {n_init}")
        self.n_init, self.init_params = n_init, init_params
        self.n_components, self.covariance_type = n_components, covariance_type
        self.max_iter, self.tol, self.reg_covar, self.seed = max_iter, tol, reg_covar, seed
        self.weights_init, self.means_init = weights_init, means_init
        self.covariances_init = covariances_init

    def _log_gauss(self, A, means, covs):
        """log N(x_i | mu_k, S_k), (N, K), through Cholesky factors S = L L^T:
        -0.5 (D log 2pi + log|S| + ||L^{-1}(x - mu)||^2)."""
        xp = _xp(A)
        n, dim = A.shape
        out = xp.empty((n, len(means)), dtype=A.dtype)
        for k in range(len(means)):
            diff = A - means[k]  # (N, D)
            if self.covariance_type == "diag":
                maha = (diff * diff / covs[k]).sum(1)
                logdet = xp.log(covs[k]).sum()
            else:
                try:
                    L = xp.linalg.cholesky(covs[k])
                except Exception as e:  # numpy LinAlgError / cupy's
                    raise ValueError(f"GaussianMixture: covariance of component {k} is not "
                                     "positive definite; raise reg_covar") from e
                y = diff @ xp.linalg.inv(L).T  # (N, D): rows are L^{-1}(x - mu)
                maha = (y * y).sum(1)
                logdet = 2.0 * xp.log(xp.diagonal(L)).sum()
            out[:, k] = -0.5 * (dim * math.log(2 * math.pi) + logdet + maha)
        return out

    def _e_step(self, A, weights, means, covs):
        xp = _xp(A)
        wl = self._log_gauss(A, means, covs) + xp.log(weights)  # (N, K) log pi_k N(x|k)
        m = wl.max(1, keepdims=True)
        log_px = m[:, 0] + xp.log(xp.exp(wl - m).sum(1))  # (N,) logsumexp over k
        return float(log_px.mean()), xp.exp(wl - log_px[:, None])

    def _m_step(self, A, resp):
        xp = _xp(A)
        nk = resp.sum(0) + 10 * np.finfo(np.float64).eps  # (K,)
        means = resp.T @ A / nk[:, None]  # (K, N) @ (N, D) -> (K, D)
        if self.covariance_type == "diag":
            covs = (resp.T @ (A * A)) / nk[:, None] - means ** 2 + self.reg_covar  # (K, D)
        else:
            covs = xp.empty((len(nk), A.shape[1], A.shape[1]), dtype=A.dtype)
            for k in range(len(nk)):
                diff = A - means[k]
                covs[k] = (resp[:, k:k + 1] * diff).T @ diff / nk[k]  # (D, N) @ (N, D)
                covs[k] += self.reg_covar * xp.eye(A.shape[1])
        return nk / len(A), means, covs

    def _init_params(self, A, rng):
        xp = _xp(A)
        K = self.n_components
        if self.means_init is None:
            if self.init_params == "random":
                resp = rng.random((len(A), K))
                resp = xp.asarray(resp / resp.sum(1, keepdims=True))  # (N, K), rows sum to 1
            else:
                km = KMeans(K, n_init=1, seed=int(rng.integers(2 ** 31)))
                if self.init_params == "kmeans":
                    labels = km.fit(Tensor._make(A)).labels_.array
                else:  # "k-means++": the seeding alone, no Lloyd iterations
                    labels = squared_distances(A, km._kmeanspp(A, _rng_for(km.seed, xp)))
                    labels = labels.argmin(1)
                resp = xp.zeros((len(A), K))
                resp[xp.arange(len(A)), labels] = 1.0
            weights, means, covs = self._m_step(A, resp)
        else:
            means = xp.asarray(_raw(self.means_init), dtype=np.float64)
            weights = (xp.full(K, 1.0 / K) if self.weights_init is None
                       else xp.asarray(_raw(self.weights_init), dtype=np.float64))
            covs = None
        if self.covariances_init is not None:
            covs = xp.asarray(_raw(self.covariances_init), dtype=np.float64)
        if covs is None:  # means given, covariances not: responsibilities from nearest mean
            resp = xp.zeros((len(A), K))
            resp[xp.arange(len(A)), squared_distances(A, means).argmin(1)] = 1.0
            covs = self._m_step(A, resp)[2]
        return weights, means, covs

    def fit(self, X) -> "GaussianMixture":
        X = _as_2d(X, "GaussianMixture.fit")
        A = X.array.astype(np.float64)
        rng = np.random.default_rng(self.seed)  # seeds of the restarts (host side)
        best = None
        for _ in range(self.n_init):
            run = self._run_em(A, *self._init_params(A, rng))
            if best is None or run[0][-1] > best[0][-1]:  # keep the highest final log p
                best = run
        self.log_likelihoods_, self.converged_, (weights, means, covs) = best
        self.n_iter_ = len(self.log_likelihoods_)
        self.weights_, self.means_ = Tensor._make(weights), Tensor._make(means)
        self.covariances_ = Tensor._make(covs)
        return self

    def _run_em(self, A, weights, means, covs):
        """EM from one start: (average log-likelihood per E-step, converged, parameters)."""
        lls, converged = [], False
        for _ in range(self.max_iter):
            ll, resp = self._e_step(A, weights, means, covs)
            lls.append(ll)
            if len(lls) > 1 and abs(ll - lls[-2]) < self.tol:
                converged = True
                break
            weights, means, covs = self._m_step(A, resp)
        return lls, converged, (weights, means, covs)

    def score_samples(self, X) -> Tensor:
        """log p(x_i) under the fitted mixture, (N,)."""
        A = _as_2d(X, "GaussianMixture.score_samples").array.astype(np.float64)
        xp = _xp(A)
        wl = self._log_gauss(A, self.means_.array, self.covariances_.array) + \
            xp.log(self.weights_.array)
        m = wl.max(1, keepdims=True)
        return Tensor._make(m[:, 0] + xp.log(xp.exp(wl - m).sum(1)))

    def log_prob(self, X) -> Tensor:
        """log p(x_i), (N,): `score_samples` under the density models' name."""
        return self.score_samples(X)

    def score(self, X) -> float:
        """Average log-likelihood per sample."""
        return float(self.score_samples(X).array.mean())

    def predict(self, X) -> Tensor:
        A = _as_2d(X, "GaussianMixture.predict").array.astype(np.float64)
        wl = self._log_gauss(A, self.means_.array, self.covariances_.array) + \
            _xp(A).log(self.weights_.array)
        return Tensor._make(wl.argmax(1))


def _raw(v):
    return v.array if isinstance(v, Tensor) else v
