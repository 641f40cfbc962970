"""tl.vi (issue 22 item 1): on Bayesian linear regression (a conjugate model, real data) the
mean-field Gaussian optimum equals its closed form (means = the posterior mean exactly,
variances 1 / Lambda_ii; Bishop 2006 sec. 10.1.2); the reparameterised gradient has lower
variance than the score-function one, and the control variate lowers the latter; both are
unbiased (their means agree with the exact ELBO gradient within a few standard errors)."""
from __future__ import annotations

import numpy as np
import pytest

import tinylatent as tl

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import load_diabetes  # noqa: E402

ALPHA, BETA = 1.0, 2.0  # prior precision, noise precision


@pytest.fixture(scope="module")
def regression():
    X, y = load_diabetes(return_X_y=True)  # (442, 10), real
    X = (X - X.mean(0)) / X.std(0)
    y = (y - y.mean()) / y.std()
    Lam = ALPHA * np.eye(X.shape[1]) + BETA * X.T @ X  # posterior precision
    m = np.linalg.solve(Lam, BETA * X.T @ y)  # posterior mean
    Xt, yt = tl.tensor(X, dtype=tl.float64), tl.tensor(y, dtype=tl.float64)

    def log_joint(w):  # (S, D) -> (S,): log N(y | X w, 1/beta) + log N(w | 0, 1/alpha)
        r = yt[None, :] - w @ Xt.T  # (S, N)
        return -0.5 * BETA * (r * r).sum(1) - 0.5 * ALPHA * (w * w).sum(1)
    return log_joint, Lam, m


def test_mean_field_optimum_is_the_closed_form(regression):
    log_joint, Lam, m = regression
    D = len(m)
    q = tl.vi.MeanFieldNormal(D, log_scale=np.full(D, -3.0), dtype=tl.float64)
    # deterministic: moment-matched draws make E_q[quadratic log p] exact at every step
    opt = tl.optim.SGD([{"params": [q.loc], "lr": 1.0 / np.linalg.eigvalsh(Lam).max()},
                        {"params": [q.log_scale], "lr": 0.3}], momentum=0.9)
    for it in range(500):
        opt.zero_grad()
        (-tl.vi.elbo(log_joint, q, 2 * D, generator=tl.Generator(it),
                     moment_matched=True)).backward()
        opt.step()
    np.testing.assert_allclose(q.loc.detach().numpy(), m, rtol=0, atol=1e-8)
    np.testing.assert_allclose(np.exp(2 * q.log_scale.detach().numpy()), 1 / np.diag(Lam),
                               rtol=1e-8)
    # mean field under-estimates the marginal variances (Bishop fig. 10.2)
    assert (1 / np.diag(Lam) <= np.diag(np.linalg.inv(Lam)) + 1e-15).all()


def test_reparam_variance_below_score_function(regression):
    log_joint, Lam, m = regression
    D = len(m)
    q = tl.vi.MeanFieldNormal(D, loc=m + 0.05, log_scale=np.full(D, -3.0), dtype=tl.float64)
    # the exact gradient of the ELBO at q (quadratic log p): d/dmu = -Lam (mu - m),
    # d/dlog sigma = 1 - Lam_ii sigma_i^2
    mu, s2 = q.loc.detach().numpy(), np.exp(2 * q.log_scale.detach().numpy())
    exact = np.concatenate([-Lam @ (mu - m), 1 - np.diag(Lam) * s2])
    g = tl.Generator(0)
    est = {name: tl.vi.gradient_estimates(log_joint, q, 10, 200, estimator=e,
                                          control_variate=cv, generator=g)
           for name, e, cv in [("reparam", "reparam", False), ("score", "score", False),
                               ("score_cv", "score", True)]}
    var = {k: v.var(0).sum() for k, v in est.items()}
    assert var["reparam"] < 0.01 * var["score"], var
    assert var["score_cv"] < var["score"], var
    for name in ("reparam", "score"):  # unbiased: within 5 standard errors per coordinate
        se = est[name].std(0) / np.sqrt(len(est[name]))
        assert (np.abs(est[name].mean(0) - exact) < 5 * se + 1e-9).all(), name


def test_moment_matched_noise_and_bad_input():
    q = tl.vi.MeanFieldNormal(3, dtype=tl.float64)
    eps = q.noise(8, tl.Generator(0), moment_matched=True).numpy()
    np.testing.assert_allclose(eps.T @ eps / 8, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(eps.mean(0), 0, atol=1e-12)
    with pytest.raises(ValueError, match="even n >= 2"):
        q.noise(5, moment_matched=True)
    with pytest.raises(ValueError, match="estimator"):
        tl.vi.elbo(lambda w: w.sum(1), q, estimator="pathwise")
    with pytest.raises(ValueError, match=r"must return a \(4,\) Tensor"):
        tl.vi.elbo(lambda w: w, q, 4)
    with pytest.raises(ValueError, match="shape"):
        tl.vi.MeanFieldNormal(3, loc=np.zeros(2))
