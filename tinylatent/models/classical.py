"""Classical latent-factor baselines: PCA, K-means and a Gaussian mixture fitted by EM.

Every fit runs on the tensor's own array module (`X.xp`: NumPy on the CPU, CuPy on a GPU) in
float64, because eigendecompositions, Cholesky factors and log-likelihood sums lose too much
in float32. Fits are closed form or EM, not gradient descent, so they record no graph; the
fitted parameters are tinylatent Tensors and `PCA.transform` is differentiable (a matmul), so
a PCA can sit inside a model.

    pca = PCA(n_components=50).fit(X)          # X: (N, D) Tensor
    Z = pca.transform(X)                       # (N, 50)
    km = KMeans(10, n_init=10, seed=0).fit(X); km.labels_, km.inertia_
    gmm = GaussianMixture(5, covariance_type="diag").fit(X); gmm.log_likelihoods_
                                               # (gaussian_mixture.py)
"""
from __future__ import annotations

import math

import numpy as np

from ..tensor import Tensor, float64

__all__ = ["PCA", "KMeans", "GaussianMixture", "squared_distances"]


def _as_2d(X, who: str) -> Tensor:
    X = X if isinstance(X, Tensor) else Tensor(np.asarray(X))
    if X.ndim != 2:
        raise ValueError(f"{who}: expected a 2-D (N, D) input, got shape {X.shape}")
    if X.dtype.kind != "f":
        X = X.to(float64)
    return X


def squared_distances(A, B):
    """||a_i - b_j||^2 for rows of two arrays (same xp), via ||a||^2 - 2 a.b + ||b||^2,
    clipped at 0 because cancellation can make tiny distances slightly negative."""
    xp = _xp(A)
    d = (A * A).sum(1)[:, None] - 2.0 * (A @ B.T) + (B * B).sum(1)[None, :]  # (N, K)
    return xp.maximum(d, 0.0)


def _xp(a):
    return Tensor._make(a).xp


def _rng_for(seed, xp):
    """A NumPy Generator on the CPU; on CuPy, CuPy's (same seed, same API subset we use)."""
    if xp is np:
        return np.random.default_rng(seed)
    return xp.random.default_rng(seed)  # pragma: no cover - GPU


# ----------------------------------------------------------------------------------- PCA
class PCA:
    """Principal component analysis by eigendecomposition of the covariance (seed 002).

    C = (1 / (N - 1)) X_c^T X_c with X_c = X - mean;  C = U diag(d) U^T,  d sorted
    descending. components_ = U[:, :k]^T (k, D);  z = (x - mean) U_k  (/ sqrt(d_k) if
    whiten);  x_hat = z U_k^T + mean. Minimises sum ||x - x_hat||^2 over rank-k projections.
    Each component's sign is fixed so its largest-magnitude entry is positive (the
    eigenvector's sign is arbitrary; this makes fits reproducible).
    """

    def __init__(self, n_components: int | float | None = None, whiten: bool = False):
        self.n_components = n_components
        self.whiten = whiten

    def fit(self, X) -> "PCA":
        X = _as_2d(X, "PCA.fit")
        xp, A = X.xp, X.array.astype(np.float64)
        n, dim = A.shape
        if n < 2:
            raise ValueError(f"PCA.fit: need at least 2 samples, got {n}")
        mean = A.mean(0)
        Ac = A - mean
        C = Ac.T @ Ac / (n - 1)  # (D, D) sample covariance
        d, U = xp.linalg.eigh(C)  # ascending
        d, U = xp.maximum(d[::-1], 0.0), U[:, ::-1]
        k = self._n_kept(d, dim, n)
        U = U[:, :k]
        signs = xp.sign(U[xp.abs(U).argmax(0), xp.arange(k)])
        U = U * xp.where(signs == 0, 1.0, signs)
        dtype = X.dtype
        self.mean_ = Tensor._make(mean.astype(dtype))
        self.components_ = Tensor._make(xp.ascontiguousarray(U.T).astype(dtype))  # (k, D)
        self.explained_variance_ = Tensor._make(d[:k].astype(dtype))
        self.explained_variance_ratio_ = Tensor._make((d[:k] / d.sum()).astype(dtype))
        self.n_components_ = k
        return self

    def _n_kept(self, d, dim: int, n: int) -> int:
        nc = self.n_components
        if nc is None:
            return min(dim, n)
        if isinstance(nc, float) and 0 < nc < 1:  # keep enough for this variance fraction
            cum = np.asarray((d / d.sum()).cumsum().tolist())
            return int(np.searchsorted(cum, nc) + 1)
        if not (1 <= int(nc) <= dim):
            raise ValueError(f"PCA: n_components={nc} must be in [1, {dim}] (data has "
                             f"{dim} features)")
        return int(nc)

    def _check(self, who: str) -> None:
        if not hasattr(self, "components_"):
            raise RuntimeError(f"PCA.{who}: call fit first")

    def transform(self, X: Tensor) -> Tensor:
        """z = (x - mean) U_k, divided by sqrt(eigenvalue) when whiten (unit variance)."""
        self._check("transform")
        X = X if isinstance(X, Tensor) else Tensor(np.asarray(X, dtype=self.mean_.dtype))
        if X.shape[-1] != self.mean_.shape[0]:
            raise ValueError(f"PCA.transform: input has {X.shape[-1]} features, PCA was fitted "
                             f"on {self.mean_.shape[0]}")
        Z = (X - self.mean_) @ self.components_.T  # (N, D) @ (D, k) -> (N, k)
        if self.whiten:
            Z = Z / (self.explained_variance_ + 1e-12).sqrt()
        return Z

    def inverse_transform(self, Z: Tensor) -> Tensor:
        self._check("inverse_transform")
        if self.whiten:
            Z = Z * (self.explained_variance_ + 1e-12).sqrt()
        return Z @ self.components_ + self.mean_  # (N, k) @ (k, D) -> (N, D)

    def fit_transform(self, X) -> Tensor:
        return self.fit(X).transform(X)


# -------------------------------------------------------------------------------- KMeans
class KMeans:
    """K-means by Lloyd's algorithm (seeds 002, 003).

    Minimises the inertia sum_i ||x_i - mu_{c(i)}||^2: alternately assign each point to its
    nearest centre, then move each centre to the mean of its points. Initialised by greedy
    k-means++ (Arthur & Vassilvitskii 2007: each new centre drawn with probability
    proportional to D(x)^2, the best of 2 + ln k candidates kept), restarted `n_init` times,
    best inertia kept. A cluster that goes empty is re-seeded with the point farthest from
    its centre (seed 003: "watch out for cheating ... cluster collapsing (re-assign images
    to empty clusters)"), so K clusters stay K clusters.
    """

    def __init__(self, n_clusters: int = 8, n_init: int = 10, max_iter: int = 300,
                 tol: float = 1e-4, seed: int | None = None, batch_size: int = 4096):
        if n_clusters < 1:
            raise ValueError(f"KMeans: n_clusters must be >= 1, got {n_clusters}")
        self.n_clusters, self.n_init, self.max_iter = n_clusters, n_init, max_iter
        self.tol, self.seed, self.batch_size = tol, seed, batch_size

    def _assign(self, A, centers):
        """Nearest centre and squared distance to it, in batches (bounded memory)."""
        xp = _xp(A)
        labels = xp.empty(len(A), dtype=np.int64)
        dmin = xp.empty(len(A), dtype=A.dtype)
        for s in range(0, len(A), self.batch_size):
            d = squared_distances(A[s:s + self.batch_size], centers)  # (B, K)
            labels[s:s + self.batch_size] = d.argmin(1)
            dmin[s:s + self.batch_size] = d.min(1)
        return labels, dmin

    def _kmeanspp(self, A, rng):
        xp = _xp(A)
        n, k = len(A), self.n_clusters
        trials = 2 + int(math.log(k))
        centers = xp.empty((k, A.shape[1]), dtype=A.dtype)
        centers[0] = A[int(rng.integers(n))]
        closest = squared_distances(A, centers[:1])[:, 0]  # (N,) D(x)^2
        for c in range(1, k):
            cdf = xp.cumsum(closest)
            u = rng.random(trials) * float(cdf[-1])
            cand = xp.minimum(xp.searchsorted(cdf, xp.asarray(u)), n - 1)
            d_cand = xp.minimum(closest[None, :], squared_distances(A[cand], A).astype(A.dtype))
            best = int(d_cand.sum(1).argmin())  # greedy: the candidate that lowers the most
            centers[c], closest = A[int(cand[best])], d_cand[best]
        return centers

    def _lloyd(self, A, centers, tol_abs: float):
        xp = _xp(A)
        k = self.n_clusters
        for it in range(1, self.max_iter + 1):
            labels, dmin = self._assign(A, centers)
            counts = xp.bincount(labels, minlength=k)
            for j in map(int, xp.nonzero(counts == 0)[0].tolist()):  # re-seed empty ones
                far = int(dmin.argmax())
                labels[far], dmin[far] = j, 0.0
                counts = xp.bincount(labels, minlength=k)
            onehot = (labels[:, None] == xp.arange(k)[None, :]).astype(A.dtype)  # (N, K)
            new = onehot.T @ A / counts[:, None]  # (K, N) @ (N, D): each cluster's mean
            shift = float(((new - centers) ** 2).sum())
            centers = new
            if shift <= tol_abs:
                break
        labels, dmin = self._assign(A, centers)
        return centers, labels, float(dmin.sum()), it

    def fit(self, X) -> "KMeans":
        X = _as_2d(X, "KMeans.fit")
        xp, A = X.xp, X.array.astype(np.float64)
        if len(A) < self.n_clusters:
            raise ValueError(f"KMeans.fit: {len(A)} samples < n_clusters={self.n_clusters}")
        rng = _rng_for(self.seed, xp)
        tol_abs = self.tol * float(A.var(0).mean())  # tol relative to the data's scale
        best = None
        for _ in range(self.n_init):
            run = self._lloyd(A, self._kmeanspp(A, rng), tol_abs)
            if best is None or run[2] < best[2]:
                best = run
        centers, labels, self.inertia_, self.n_iter_ = best
        self.cluster_centers_ = Tensor._make(centers.astype(X.dtype))  # (K, D)
        self.labels_ = Tensor._make(labels)
        return self

    def predict(self, X) -> Tensor:
        X = _as_2d(X, "KMeans.predict")
        labels, _ = self._assign(X.array.astype(np.float64),
                                 self.cluster_centers_.array.astype(np.float64))
        return Tensor._make(labels)

    def transform(self, X) -> Tensor:
        """Squared distances to every centre, (N, K)."""
        X = _as_2d(X, "KMeans.transform")
        return Tensor._make(squared_distances(X.array, self.cluster_centers_.array.astype(
            X.dtype)))

    def fit_predict(self, X) -> Tensor:
        return self.fit(X).labels_


def __getattr__(name: str):
    """GaussianMixture lives in gaussian_mixture.py (it uses KMeans to initialise); it is
    served from here too, lazily, so the classical models import from one place without a
    circular import."""
    if name == "GaussianMixture":
        from .gaussian_mixture import GaussianMixture
        return GaussianMixture
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
