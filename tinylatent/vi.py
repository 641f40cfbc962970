"""Black-box variational inference (seed 004): a mean-field Gaussian family and the ELBO
with two gradient estimators.

    q = tl.vi.MeanFieldNormal(D)                       # q(w) = prod_i N(w_i | mu_i, sigma_i^2)
    opt = tl.optim.Adam(q.parameters(), lr=1e-2)
    loss = -tl.vi.elbo(log_joint, q, num_samples=8)    # log_joint: (S, D) Tensor -> (S,)
    loss.backward(); opt.step()

ELBO(q) = E_q[log p(x, w)] + H[q] <= log p(x). Its gradient in the variational parameters
lambda = (mu, log sigma) is estimated from S draws w_s ~ q:
  * "reparam" (Kingma & Welling 2014, sec. 2.4; Titsias & Lazaro-Gredilla 2014):
        w_s = mu + sigma * eps_s, grad = (1/S) sum_s grad_lambda log p(x, w_s) + grad H[q]
    (the Gaussian entropy H = sum_i log sigma_i + D/2 (1 + log 2 pi) in closed form).
  * "score" (Ranganath, Gerrish & Blei 2014, "Black box variational inference", eq. 3):
        grad = (1/S) sum_s grad_lambda log q(w_s) (log p(x, w_s) - log q(w_s)),
    which needs only evaluations of log p; with `control_variate=True` each dimension i
    subtracts a_i = sum_d Cov(f_d, h_d) / sum_d Var(h_d) (their eqs. 8-9), h_d the score
    components of (mu_i, log sigma_i), f_d = h_d (log p - log q), estimated from the draws.
`elbo` returns a Tensor whose value is the ELBO estimate and whose gradient is the chosen
estimator. `moment_matched=True` draws antithetic eps whitened to mean 0 and covariance I
exactly (moment matching, Glasserman 2004 sec. 4.5): then E_q[quadratic] is exact, which
makes the conjugate-Gaussian optimum reachable to float precision (tests/test_vi.py).
"""
from __future__ import annotations

import math

import numpy as np

from .distributions import Normal
from .random import randn
from .tensor import Tensor, tensor

__all__ = ["MeanFieldNormal", "elbo", "gradient_estimates"]

_LOG_2PI = math.log(2 * math.pi)


class MeanFieldNormal:
    """q(w) = prod_i N(w_i | loc_i, exp(log_scale_i)^2), parameters loc (D,), log_scale (D,)."""

    def __init__(self, dim: int, loc=None, log_scale=None, dtype=None):
        if dim < 1:
            raise ValueError(f"MeanFieldNormal: dim must be >= 1, got {dim}")
        self.dim = dim
        loc = np.zeros(dim) if loc is None else np.asarray(loc, dtype=np.float64)
        log_scale = np.zeros(dim) if log_scale is None else np.asarray(log_scale, np.float64)
        if loc.shape != (dim,) or log_scale.shape != (dim,):
            raise ValueError(f"MeanFieldNormal: loc and log_scale must have shape ({dim},), "
                             f"got {loc.shape} and {log_scale.shape}")
        self.loc = tensor(loc, dtype=dtype, requires_grad=True)
        self.log_scale = tensor(log_scale, dtype=dtype, requires_grad=True)

    def parameters(self) -> list:
        return [self.loc, self.log_scale]

    @property
    def scale(self) -> Tensor:
        return self.log_scale.exp()

    def noise(self, n: int, generator=None, moment_matched: bool = False) -> Tensor:
        """eps (n, D) ~ N(0, I); moment-matched: antithetic pairs whitened so that
        mean(eps) = 0 and eps^T eps / n = I exactly (needs even n >= 2 D)."""
        if not moment_matched:
            return randn(n, self.dim, dtype=self.loc.dtype, generator=generator)
        if n % 2 or n < 2 * self.dim:
            raise ValueError(f"MeanFieldNormal.noise: moment_matched needs an even n >= 2 * "
                             f"dim = {2 * self.dim}, got n={n}")
        half = randn(n // 2, self.dim, dtype=np.float64, generator=generator).array
        eps = np.concatenate([half, -half])  # (n, D): antithetic, so every odd moment is 0
        L = np.linalg.cholesky(eps.T @ eps / n)
        eps = np.linalg.solve(L, eps.T).T  # (n, D) with eps^T eps / n = I
        return tensor(eps, dtype=self.loc.dtype)

    def rsample(self, n: int, generator=None, moment_matched: bool = False) -> Tensor:
        """w = loc + scale * eps, (n, D), differentiable in loc and log_scale."""
        return self.loc + self.scale * self.noise(n, generator, moment_matched)

    def log_prob_dims(self, w: Tensor) -> Tensor:
        """log q_i(w_i) per dimension, (n, D)."""
        return Normal(self.loc, self.scale).log_prob(w)

    def log_prob(self, w: Tensor) -> Tensor:
        """log q(w), (n,)."""
        return self.log_prob_dims(w).sum(-1)

    def entropy(self) -> Tensor:
        """H[q] = sum_i log sigma_i + D/2 (1 + log 2 pi)."""
        return self.log_scale.sum() + 0.5 * self.dim * (1 + _LOG_2PI)

    def score(self, w) -> tuple:
        """grad_lambda log q(w) per draw, NumPy (n, D) each: d/dloc = (w - mu) / sigma^2,
        d/dlog_scale = (w - mu)^2 / sigma^2 - 1."""
        w = w.array if isinstance(w, Tensor) else np.asarray(w)
        z = (w - self.loc.array) / np.exp(self.log_scale.array)
        return z / np.exp(self.log_scale.array), z * z - 1


def elbo(log_joint, q: MeanFieldNormal, num_samples: int = 1, estimator: str = "reparam",
         control_variate: bool = False, generator=None, moment_matched: bool = False) -> Tensor:
    """The ELBO estimate from num_samples draws; its gradient is the chosen estimator.

    log_joint: (S, D) Tensor of draws -> (S,) Tensor log p(x, w_s)."""
    if estimator not in ("reparam", "score"):
        raise ValueError(f"elbo: estimator must be 'reparam' or 'score', got {estimator!r}")
    if control_variate and estimator != "score":
        raise ValueError("elbo: control_variate applies to the score-function estimator")
    if estimator == "reparam":
        lp = log_joint(q.rsample(num_samples, generator, moment_matched))
        _check(lp, num_samples)
        return lp.mean() + q.entropy()
    w = q.rsample(num_samples, generator, moment_matched).detach()  # no path through w
    lp = log_joint(w)
    _check(lp, num_samples)
    log_q_dims = q.log_prob_dims(w)  # (S, D), depends on lambda
    ell = (lp.detach().array - log_q_dims.detach().array.sum(1))  # (S,) log p - log q
    a = _control_variate(q, w, ell) if control_variate else np.zeros(q.dim)
    weight = tensor(ell[:, None] - a[None, :], dtype=log_q_dims.dtype)  # (S, D), constant
    surrogate = (log_q_dims * weight).sum(1).mean()  # its gradient is the estimator
    value = float(ell.mean())
    return surrogate - surrogate.detach() + value


def _check(lp, n):
    if not isinstance(lp, Tensor) or tuple(lp.shape) != (n,):
        raise ValueError(f"elbo: log_joint must return a ({n},) Tensor, got "
                         f"{getattr(lp, 'shape', type(lp))}")


def _control_variate(q, w, ell):
    """Ranganath et al. eq. 9 per dimension i over its two score components d:
    a_i = sum_d Cov(h_d ell, h_d) / sum_d Var(h_d)."""
    num, den = 0.0, 0.0
    for h in q.score(w):  # (S, D) each
        f = h * ell[:, None]
        num = num + ((f - f.mean(0)) * (h - h.mean(0))).mean(0)
        den = den + h.var(0)
    return num / np.maximum(den, 1e-300)


def gradient_estimates(log_joint, q: MeanFieldNormal, num_samples: int, repeats: int,
                       estimator: str = "reparam", control_variate: bool = False,
                       generator=None) -> np.ndarray:
    """`repeats` independent gradient estimates of the ELBO, (repeats, 2 D): loc then
    log_scale. Their variance across repeats is what the estimators are compared by."""
    out = []
    for _ in range(repeats):
        for p in q.parameters():
            p.grad = None
        elbo(log_joint, q, num_samples, estimator, control_variate, generator).backward()
        out.append(np.concatenate([p.grad.array.astype(np.float64) for p in q.parameters()]))
    return np.stack(out)
