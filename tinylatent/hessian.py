"""Hessian spectra of a training loss without forming the Hessian (seed 001, "flat minima";
PyHessian, Yao et al. 2020; Ghorbani, Krishnan & Xiao 2019, "An investigation into neural
net optimization via Hessian eigenvalue density").

Everything is built on one primitive, the Hessian-vector product by double backward
(Pearlmutter 1994): H v = grad_w (grad_w L(w) . v), one extra backward pass.

    H = tl.hessian.HessianOperator(lambda: model.loss(batch)[0], model.parameters())
    top = tl.hessian.eigenvalues(H, k=3)                 # Lanczos (or method="power")
    tr, se = tl.hessian.trace(H, num_samples=100)        # Hutchinson
    grid, density = tl.hessian.spectral_density(H)      # stochastic Lanczos quadrature

Lanczos (Golub & Van Loan sec. 10.1) builds an orthonormal Krylov basis Q_m with
Q_m^T H Q_m = T_m tridiagonal; its eigenvalues (Ritz values) approach H's extreme ones.
Full re-orthogonalisation keeps Q_m orthonormal in floating point. SLQ: for a random unit v,
the eigenpairs (theta_j, s_j) of T_m give a Gauss quadrature of v^T f(H) v = sum_j tau_j
f(theta_j), tau_j = s_j[0]^2, exact for polynomials f of degree < 2m; averaged over v and
smoothed with a Gaussian of width sigma, it estimates the spectral density
phi(t) = (1/n) sum_i delta(t - lambda_i) (Ghorbani et al. eqs. 3-6).
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

import numpy as np

from .autograd import enable_grad, grad
from .tensor import Tensor, tensor

__all__ = ["HessianOperator", "hvp", "eigenvalues", "lanczos", "trace", "spectral_density"]


class HessianOperator:
    """v -> H v for the Hessian of loss_fn() in params, on flat float64 NumPy vectors.

    loss_fn() -> scalar Tensor (e.g. the loss on a fixed batch). With `batches`,
    loss_fn(batch) is called per batch and H is the size-weighted mean over them
    (the full-data Hessian in memory-sized pieces, as PyHessian does)."""

    def __init__(self, loss_fn: Callable, params: Iterable[Tensor], batches=None):
        self.loss_fn, self.params = loss_fn, [p for p in params if p.requires_grad]
        if not self.params:
            raise ValueError("HessianOperator: no parameter requires grad")
        self.batches = None if batches is None else list(batches)
        self.shapes = [p.shape for p in self.params]
        self.dim = sum(int(np.prod(s)) for s in self.shapes)
        self._graphs = None  # (weight, gradients with their graph) per batch, built lazily

    def _gradient_graphs(self):
        if self._graphs is None:
            items = [None] if self.batches is None else self.batches
            sizes = [1.0 if b is None else float(len(b[0] if isinstance(b, (tuple, list))
                                                     else b)) for b in items]
            graphs = []
            with enable_grad():
                for b, n in zip(items, sizes):
                    loss = self.loss_fn() if b is None else self.loss_fn(b)
                    if not isinstance(loss, Tensor) or loss.numel() != 1:
                        raise ValueError("HessianOperator: loss_fn must return a scalar Tensor")
                    graphs.append((n / sum(sizes), grad(loss, self.params, create_graph=True)))
            self._graphs = graphs
        return self._graphs

    def split(self, v: np.ndarray) -> list:
        out, i = [], 0
        for p, s in zip(self.params, self.shapes):
            n = int(np.prod(s))
            out.append(tensor(v[i:i + n].reshape(s), dtype=p.dtype, device=p.device))
            i += n
        return out

    def matvec(self, v) -> np.ndarray:
        """H v, (dim,) float64: grad_w (g(w) . v) by a second backward through g's graph."""
        v = np.asarray(v, dtype=np.float64)
        if v.shape != (self.dim,):
            raise ValueError(f"HessianOperator.matvec: v must have shape ({self.dim},), got "
                             f"{v.shape}")
        out = np.zeros(self.dim)
        for weight, g in self._gradient_graphs():
            hv = grad(g, self.params, grad_outputs=self.split(v), retain_graph=True,
                      allow_unused=True)
            out += weight * np.concatenate([
                np.zeros(int(np.prod(s))) if h is None else
                np.asarray(h.detach().numpy(), np.float64).ravel()
                for h, s in zip(hv, self.shapes)])
        return out

    __matmul__ = matvec


def hvp(loss_fn: Callable, params, v) -> list:
    """H v as Tensors shaped like params, v a list of Tensors (or a flat array)."""
    op = HessianOperator(loss_fn, params)
    flat = v if isinstance(v, np.ndarray) else np.concatenate(
        [np.asarray(t.detach().numpy(), np.float64).ravel() for t in v])
    return op.split(op.matvec(flat))


def _rng(seed):
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def lanczos(op, steps: int, v0=None, seed=None) -> tuple:
    """m = steps Lanczos iterations with full re-orthogonalisation from v0 (random if None).
    Returns (alpha (m,), beta (m-1,), Q (m, n)): T = tridiag(beta, alpha, beta) = Q H Q^T.
    Stops early (fewer rows) when the Krylov space is exhausted."""
    n = op.dim
    steps = min(steps, n)
    q = _rng(seed).standard_normal(n) if v0 is None else np.asarray(v0, np.float64)
    q = q / np.linalg.norm(q)
    Q, alpha, beta = [q], [], []
    for j in range(steps):
        w = op.matvec(Q[j])
        alpha.append(float(Q[j] @ w))
        w = w - alpha[j] * Q[j] - (beta[j - 1] * Q[j - 1] if j else 0.0)
        B = np.array(Q)  # (j+1, n): re-orthogonalise twice against every basis vector
        w -= B.T @ (B @ w)
        w -= B.T @ (B @ w)
        b = float(np.linalg.norm(w))
        if j == steps - 1 or b < 1e-12 * max(1.0, abs(alpha[j])):
            break
        beta.append(b)
        Q.append(w / b)
    return np.array(alpha), np.array(beta), np.array(Q[:len(alpha)])


def _tridiagonal_eigh(alpha, beta):
    T = np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)
    return np.linalg.eigh(T)


def eigenvalues(op, k: int = 1, method: str = "lanczos", max_iter: int = 100,
                tol: float = 1e-8, seed=None) -> tuple:
    """The k largest (algebraic) eigenvalues of H, descending, and their unit eigenvectors
    (k, n). "lanczos": Ritz pairs after max_iter steps; "power": power iteration with
    deflation against the pairs already found (PyHessian), until the Rayleigh quotient
    changes by less than tol relatively (power iteration finds the largest |lambda|)."""
    if method not in ("lanczos", "power"):
        raise ValueError(f"eigenvalues: method must be 'lanczos' or 'power', got {method!r}")
    rng = _rng(seed)
    if method == "lanczos":
        alpha, beta, Q = lanczos(op, max(max_iter, k), seed=rng)
        theta, S = _tridiagonal_eigh(alpha, beta)
        order = np.argsort(-theta)[:k]
        return theta[order], (S[:, order].T @ Q)
    vals, vecs = [], []
    for _ in range(k):
        v = rng.standard_normal(op.dim)
        lam = None
        for _ in range(max_iter):
            for u in vecs:  # deflate: stay orthogonal to the eigenvectors already found
                v -= (u @ v) * u
            v /= np.linalg.norm(v)
            hv = op.matvec(v)
            new = float(v @ hv)
            converged = lam is not None and abs(new - lam) < tol * (abs(lam) + 1e-12)
            lam, v = new, hv
            if converged:
                break
        for u in vecs:
            v -= (u @ v) * u
        vals.append(lam)
        vecs.append(v / np.linalg.norm(v))
    return np.array(vals), np.array(vecs)


def trace(op, num_samples: int = 100, seed=None) -> tuple:
    """Hutchinson's estimator tr(H) = E[v^T H v], v Rademacher (Hutchinson 1990).
    Returns (estimate, its standard error)."""
    rng = _rng(seed)
    vals = np.array([v @ op.matvec(v) for v in
                     (rng.integers(0, 2, op.dim) * 2.0 - 1.0 for _ in range(num_samples))])
    return float(vals.mean()), float(vals.std(ddof=1) / math.sqrt(num_samples)) \
        if num_samples > 1 else float("nan")


def slq_nodes(op, num_runs: int = 5, steps: int = 80, seed=None) -> tuple:
    """Gauss quadrature nodes and weights per run: (theta (R, m), tau (R, m)), each run's
    weights summing to 1 (runs stopped early are padded with zero weight)."""
    rng = _rng(seed)
    thetas, taus = [], []
    for _ in range(num_runs):
        v = rng.integers(0, 2, op.dim) * 2.0 - 1.0  # Rademacher, normalised in lanczos
        alpha, beta, _ = lanczos(op, steps, v0=v)
        theta, S = _tridiagonal_eigh(alpha, beta)
        pad = steps - len(theta)
        thetas.append(np.pad(theta, (0, pad)))
        taus.append(np.pad(S[0] ** 2, (0, pad)))
    return np.array(thetas), np.array(taus)


def spectral_density(op, num_runs: int = 5, steps: int = 80, grid=None,
                     sigma: float | None = None, seed=None) -> tuple:
    """SLQ estimate of the eigenvalue density on `grid`: (grid, density), density
    integrating to ~1 (Ghorbani et al. eq. 6 with a Gaussian kernel of width sigma,
    by default 1% of the node range)."""
    theta, tau = slq_nodes(op, num_runs, steps, seed)
    lo, hi = float(theta.min()), float(theta.max())
    pad = 0.05 * (hi - lo + 1e-12)
    grid = np.linspace(lo - pad, hi + pad, 1000) if grid is None else np.asarray(grid)
    sigma = sigma or 0.01 * (hi - lo + 1e-12)
    kernel = np.exp(-0.5 * ((grid[:, None, None] - theta[None]) / sigma) ** 2) \
        / (sigma * math.sqrt(2 * math.pi))  # (G, R, m)
    return grid, (kernel * tau[None]).sum(2).mean(1)
