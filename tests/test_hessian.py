"""tl.hessian (issue 22 item 8) against the explicit Hessian of a small network in float64
(built row by row by tl.autograd.functional.hessian on the flat parameters): Hessian-vector
products, top eigenvalues by Lanczos and by power iteration to 1e-6, Hutchinson's trace,
and stochastic Lanczos quadrature's Gauss-quadrature moments."""
from __future__ import annotations

import numpy as np
import pytest

import tinylatent as tl
from tinylatent.autograd_functional import hessian as explicit_hessian

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import load_iris  # noqa: E402

SHAPES = [(4, 5), (5,), (5, 3), (3,)]  # a 4-5-3 tanh MLP: 43 parameters


@pytest.fixture(scope="module")
def net():
    X, y = load_iris(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    Xt, yt = tl.tensor(X, dtype=tl.float64), tl.tensor(y)

    def loss(params):
        W1, b1, W2, b2 = params
        logits = (Xt @ W1 + b1).tanh() @ W2 + b2  # (150, 3)
        return -logits.log_softmax(-1)[tl.arange(len(y)), yt].mean()

    def unflatten(theta):
        out, i = [], 0
        for s in SHAPES:
            n = int(np.prod(s))
            out.append(theta[i:i + n].reshape(s))
            i += n
        return out
    theta0 = np.random.default_rng(0).normal(0, 0.8, sum(int(np.prod(s)) for s in SHAPES))
    H = explicit_hessian(lambda th: loss(unflatten(th)),
                         tl.tensor(theta0, dtype=tl.float64)).numpy()
    params = [tl.tensor(p, dtype=tl.float64, requires_grad=True) for p in
              unflatten(theta0)]
    op = tl.hessian.HessianOperator(lambda: loss(params), params)
    return op, H, (loss, params)


def test_hvp_equals_explicit_hessian(net):
    op, H, (loss, params) = net
    np.testing.assert_allclose(H, H.T, atol=1e-12)
    v = np.random.default_rng(1).standard_normal(op.dim)
    np.testing.assert_allclose(op.matvec(v), H @ v, rtol=1e-10, atol=1e-12)
    hv = tl.hessian.hvp(lambda: loss(params), params, op.split(v))
    np.testing.assert_allclose(np.concatenate([h.numpy().ravel() for h in hv]), H @ v,
                               rtol=1e-10, atol=1e-12)


def test_top_eigenvalues_lanczos_and_power(net):
    op, H, _ = net
    lam = np.linalg.eigvalsh(H)[::-1]  # descending
    vals, vecs = tl.hessian.eigenvalues(op, k=3, max_iter=op.dim, seed=0)
    np.testing.assert_allclose(vals, lam[:3], rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.abs((vecs @ H @ vecs.T).diagonal()), np.abs(lam[:3]),
                               atol=1e-6)
    top = lam[np.argmax(np.abs(lam))]  # power iteration finds the largest |lambda|
    p_vals, _ = tl.hessian.eigenvalues(op, k=1, method="power", max_iter=2000, tol=1e-14,
                                       seed=0)
    assert abs(p_vals[0] - top) < 1e-6, (p_vals, lam[:3])
    with pytest.raises(ValueError, match="method"):
        tl.hessian.eigenvalues(op, method="arnoldi")


def test_hutchinson_trace_and_slq_quadrature(net):
    op, H, _ = net
    est, se = tl.hessian.trace(op, num_samples=200, seed=0)
    assert abs(est - np.trace(H)) < 4 * se, (est, se, np.trace(H))
    # Gauss quadrature from m Lanczos steps is exact for moments of degree < 2m:
    # sum_j tau_j theta_j^p = u^T H^p u, u the normalised start vector
    v = np.random.default_rng(2).integers(0, 2, op.dim) * 2.0 - 1.0
    alpha, beta, Q = tl.hessian.lanczos(op, 5, v0=v)
    theta, S = np.linalg.eigh(np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1))
    u = v / np.linalg.norm(v)
    for p in range(0, 10):
        exact = u @ np.linalg.matrix_power(H, p) @ u
        assert abs((S[0] ** 2 * theta ** p).sum() - exact) < 1e-8 * max(1, abs(exact)), p
    np.testing.assert_allclose(Q @ Q.T, np.eye(5), atol=1e-12)
    grid, dens = tl.hessian.spectral_density(op, num_runs=3, steps=op.dim, seed=0)
    assert abs(np.trapezoid(dens, grid) - 1) < 1e-3
