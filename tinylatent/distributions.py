"""Probability distributions for latent-variable models: Normal, Bernoulli, Categorical,
Laplace, Beta, Dirichlet, MultivariateNormal (scale_tril), Independent, the relaxed
(Concrete / Gumbel-softmax) Bernoulli and one-hot Categorical, MixtureSameFamily, and analytic
KL divergences between distributions of one family. Every density is written in Tensor ops,
so `log_prob`, `entropy`, `rsample` and `kl_divergence` are differentiable in the parameters
(gradchecked against central differences; values checked against scipy.stats).

    q = Normal(mu, (0.5 * logvar).exp())          # q(z|x) of a VAE (Kingma & Welling 2014)
    z = q.rsample()                               # z = mu + sigma * eps, eps ~ N(0, I)
    kl = kl_divergence(q, Normal(0.0, 1.0)).sum(-1)

Sampling takes `generator=` (a tl.Generator) for reproducible streams.
"""
from __future__ import annotations

import math

import numpy as np

from . import ops
from .autograd import no_grad
from .random import rand, randn
from .tensor import Tensor, get_default_dtype, is_float_dtype

__all__ = ["Distribution", "Normal", "Bernoulli", "Categorical", "Laplace", "Beta", "Gamma",
           "Cauchy", "OneHotCategorical",
           "Dirichlet", "MultivariateNormal", "Independent", "RelaxedBernoulli",
           "RelaxedOneHotCategorical", "MixtureSameFamily", "kl_divergence", "standard_normal"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _params(*values):
    """Turn numbers / arrays / Tensors into Tensors of one float dtype and device."""
    like = next((v for v in values if isinstance(v, Tensor)), None)
    dtype = like.dtype if like is not None and is_float_dtype(like.dtype) else get_default_dtype()
    device = like.device if like is not None else None
    out = []
    for v in values:
        if isinstance(v, Tensor):
            out.append(v if v.dtype == dtype else v.to(dtype))
        else:
            out.append(Tensor(np.asarray(v, dtype=dtype), device=device))
    return out


def _shape(sample_shape) -> tuple:
    return (sample_shape,) if isinstance(sample_shape, int) else tuple(sample_shape)


def _value(value, like: Tensor) -> Tensor:
    if isinstance(value, Tensor):
        return value
    return Tensor(np.asarray(value, dtype=like.dtype), device=like.device)


class Distribution:
    """Base class: `batch_shape` (independent distributions), `event_shape` (one draw)."""

    batch_shape: tuple = ()
    event_shape: tuple = ()
    has_rsample = False

    def sample(self, sample_shape=(), generator=None) -> Tensor:
        """A draw of shape sample_shape + batch_shape + event_shape, without gradient (by
        default an rsample with the graph left out)."""
        if not self.has_rsample:
            raise NotImplementedError(f"{type(self).__name__}.sample")
        with no_grad():
            return self.rsample(sample_shape, generator).detach()

    def rsample(self, sample_shape=(), generator=None) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no reparameterised sampler "
                                  "(rsample); use sample() and a score-function estimator")

    def log_prob(self, value) -> Tensor:
        raise NotImplementedError

    def entropy(self) -> Tensor:
        raise NotImplementedError

    def _extended(self, sample_shape) -> tuple:
        return _shape(sample_shape) + tuple(self.batch_shape) + tuple(self.event_shape)


class Normal(Distribution):
    """N(loc, scale^2), element-wise.

    log p(x) = -(x - loc)^2 / (2 scale^2) - log scale - log(2 pi) / 2
    H        = 1/2 + log(2 pi) / 2 + log scale
    """

    has_rsample = True

    def __init__(self, loc, scale, validate_args: bool = True):
        self.loc, self.scale = _params(loc, scale)
        self.batch_shape = tuple(np.broadcast_shapes(self.loc.shape, self.scale.shape))
        if validate_args and self.scale.array.size and not bool((self.scale.array > 0).all()):
            raise ValueError(f"Normal: scale must be > 0 everywhere (shape "
                             f"{self.scale.shape}, min {float(self.scale.array.min())})")

    def __repr__(self) -> str:
        return f"Normal(loc: {self.loc.shape}, scale: {self.scale.shape})"

    @property
    def mean(self) -> Tensor:
        return ops.broadcast_to(self.loc, self.batch_shape)

    @property
    def stddev(self) -> Tensor:
        return ops.broadcast_to(self.scale, self.batch_shape)

    @property
    def variance(self) -> Tensor:
        return self.stddev * self.stddev

    def rsample(self, sample_shape=(), generator=None) -> Tensor:
        """loc + scale * eps, eps ~ N(0, 1): differentiable in loc and scale
        (the reparameterisation trick, Kingma & Welling 2014, sec. 2.4)."""
        eps = randn(self._extended(sample_shape), dtype=self.loc.dtype, device=self.loc.device,
                    generator=generator)
        return self.loc + self.scale * eps

    def log_prob(self, value) -> Tensor:
        x = _value(value, self.loc)
        z = (x - self.loc) / self.scale
        return -0.5 * z * z - self.scale.log() - _HALF_LOG_2PI

    def cdf(self, value) -> Tensor:
        x = _value(value, self.loc)
        return 0.5 * (1 + ops.erf((x - self.loc) / (self.scale * math.sqrt(2))))

    def entropy(self) -> Tensor:
        return ops.broadcast_to(0.5 + _HALF_LOG_2PI + self.scale.log(), self.batch_shape)


class Bernoulli(Distribution):
    """Bernoulli(probs=p) or Bernoulli(logits=l), p = sigmoid(l), element-wise.

    From logits the log-likelihood is computed without forming p (stable for |l| large):
        log p(x) = x * l - softplus(l)         (= -BCE-with-logits)
        H        = softplus(l) - l * sigmoid(l)
    """

    def __init__(self, probs=None, logits=None, validate_args: bool = True):
        if (probs is None) == (logits is None):
            raise ValueError("Bernoulli: pass exactly one of probs= or logits=")
        if probs is not None:
            (self._probs,) = _params(probs)
            self._logits = None
            p = self._probs.array
            if validate_args and p.size and not bool(((p >= 0) & (p <= 1)).all()):
                raise ValueError(f"Bernoulli: probs must lie in [0, 1] (shape {p.shape}, "
                                 f"range [{float(p.min())}, {float(p.max())}])")
            self.batch_shape = tuple(self._probs.shape)
        else:
            (self._logits,) = _params(logits)
            self._probs = None
            self.batch_shape = tuple(self._logits.shape)

    def __repr__(self) -> str:
        kind = "probs" if self._logits is None else "logits"
        return f"Bernoulli({kind}: {self.batch_shape})"

    @property
    def probs(self) -> Tensor:
        return self._probs if self._probs is not None else ops.sigmoid(self._logits)

    @property
    def logits(self) -> Tensor:
        if self._logits is not None:
            return self._logits
        p = ops.clamp(self._probs, _eps(self._probs), 1 - _eps(self._probs))
        return p.log() - (-p).log1p()

    @property
    def mean(self) -> Tensor:
        return self.probs

    @property
    def variance(self) -> Tensor:
        p = self.probs
        return p * (1 - p)

    def _log_p_and_log_1mp(self):
        """(log p, log(1 - p)), from logits via logsigmoid when possible."""
        if self._logits is not None:
            return ops.logsigmoid(self._logits), ops.logsigmoid(-self._logits)
        p = self._probs
        # clamped so that p in {0, 1} gives finite logs and gradients (0 * log 0 = 0)
        return _safe_log(p), (-ops.clamp(p, max=1 - _eps(p) / 2)).log1p()

    def log_prob(self, value) -> Tensor:
        like = self._logits if self._logits is not None else self._probs
        x = _value(value, like)
        if self._logits is not None:
            l = self._logits
            return x * l - ops.softplus(l)
        log_p, log_1mp = self._log_p_and_log_1mp()
        return x * log_p + (1 - x) * log_1mp

    def entropy(self) -> Tensor:
        if self._logits is not None:
            l = self._logits
            return ops.softplus(l) - l * ops.sigmoid(l)
        p = self._probs
        log_p, log_1mp = self._log_p_and_log_1mp()
        return -(p * log_p + (1 - p) * log_1mp)

    def sample(self, sample_shape=(), generator=None) -> Tensor:
        with no_grad():
            p = self.probs.detach()
            u = rand(self._extended(sample_shape), dtype=p.dtype, device=p.device,
                     generator=generator)
            return Tensor._make((u.array < p.array).astype(p.dtype))


def _eps(t: Tensor) -> float:
    return float(np.finfo(t.dtype).eps)


def _safe_log(p: Tensor) -> Tensor:
    """log max(p, tiny): finite at p = 0, so 0 * log 0 = 0 in entropies and KLs, and the
    gradient stays finite (a `where` around log 0 would still leak NaN into backward)."""
    return ops.clamp(p, min=float(np.finfo(p.dtype).tiny)).log()


class Categorical(Distribution):
    """Categorical(probs=p) or Categorical(logits=l) over the last axis (K classes).

    log p(k) = l_k - logsumexp(l)       H = -sum_k p_k log p_k
    probs need not be normalised (they are divided by their sum), like PyTorch.
    """

    def __init__(self, probs=None, logits=None, validate_args: bool = True):
        if (probs is None) == (logits is None):
            raise ValueError("Categorical: pass exactly one of probs= or logits=")
        given = probs if probs is not None else logits
        (t,) = _params(given)
        if t.ndim < 1:
            raise ValueError("Categorical: probs/logits need at least one axis (the classes), "
                             f"got shape {t.shape}")
        if probs is not None:
            if validate_args and t.array.size and not bool((t.array >= 0).all()):
                raise ValueError(f"Categorical: probs must be >= 0 (shape {t.shape})")
            self._probs = t / t.sum(axis=-1, keepdims=True)
            self._logits = None
        else:
            self._logits = t - ops.logsumexp(t, axis=-1, keepdims=True)
            self._probs = None
        self.num_events = t.shape[-1]
        self.batch_shape = tuple(t.shape[:-1])

    def __repr__(self) -> str:
        return f"Categorical(batch: {self.batch_shape}, classes: {self.num_events})"

    @property
    def logits(self) -> Tensor:
        """Normalised log-probabilities, log p_k."""
        if self._logits is not None:
            return self._logits
        return _safe_log(self._probs)

    @property
    def probs(self) -> Tensor:
        return self._probs if self._probs is not None else ops.softmax(self._logits, axis=-1)

    def log_prob(self, value) -> Tensor:
        """log p(value) for integer class indices of shape broadcastable to batch_shape."""
        idx = value.array if isinstance(value, Tensor) else np.asarray(value)
        if idx.dtype.kind not in "iu":
            if idx.dtype.kind == "f" and bool((idx == np.round(idx)).all()):
                idx = idx.astype(np.int64)
            else:
                raise TypeError(f"Categorical.log_prob: value must hold integer class "
                                f"indices, got dtype {idx.dtype}")
        if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= self.num_events):
            raise ValueError(f"Categorical.log_prob: class indices must be in [0, "
                             f"{self.num_events}), got range [{int(idx.min())}, "
                             f"{int(idx.max())}]")
        shape = tuple(np.broadcast_shapes(idx.shape, self.batch_shape))
        logp = ops.broadcast_to(self.logits, shape + (self.num_events,))  # (..., K)
        xp = logp.xp
        index = xp.broadcast_to(xp.asarray(idx), shape)[..., None]          # (..., 1)
        return ops.take_along_axis(logp, index, axis=-1).squeeze(-1)       # (...)

    def entropy(self) -> Tensor:
        p = self.probs
        return -(p * self.logits).sum(axis=-1)

    def sample(self, sample_shape=(), generator=None) -> Tensor:
        """Inverse-CDF sampling: the index of the first cumulative probability above u."""
        with no_grad():
            p = self.probs.detach().array
            xp = self.probs.xp
            cdf = xp.cumsum(p, axis=-1)                                     # (*batch, K)
            shape = _shape(sample_shape) + self.batch_shape
            u = rand(shape, dtype=p.dtype, device=self.probs.device, generator=generator)
            u = u.array[..., None] * cdf[..., -1:]                           # (*S, *batch, 1)
            k = (cdf <= u).sum(axis=-1)
            return Tensor._make(xp.minimum(k, self.num_events - 1).astype(np.int64))


class Laplace(Distribution):
    """Laplace(loc, scale), element-wise.

    log p(x) = -log(2 b) - |x - loc| / b        H = 1 + log(2 b)
    rsample:  x = loc - b sign(u) log(1 - 2|u|),  u ~ U(-1/2, 1/2) (the inverse CDF)
    """

    has_rsample = True

    def __init__(self, loc, scale, validate_args: bool = True):
        self.loc, self.scale = _params(loc, scale)
        self.batch_shape = tuple(np.broadcast_shapes(self.loc.shape, self.scale.shape))
        if validate_args:
            _check_positive("Laplace", "scale", self.scale)

    def __repr__(self) -> str:
        return f"Laplace(loc: {self.loc.shape}, scale: {self.scale.shape})"

    @property
    def mean(self) -> Tensor:
        return ops.broadcast_to(self.loc, self.batch_shape)

    @property
    def variance(self) -> Tensor:
        return ops.broadcast_to(2 * self.scale * self.scale, self.batch_shape)

    def rsample(self, sample_shape=(), generator=None) -> Tensor:
        u = rand(self._extended(sample_shape), dtype=self.loc.dtype, device=self.loc.device,
                 generator=generator).array - 0.5                    # [-1/2, 1/2)
        tiny = float(np.finfo(u.dtype).tiny)
        xp = self.loc.xp
        # the noise as a constant: -sign(u) log(1 - 2|u|) is a standard Laplace draw
        e = Tensor._make((-xp.sign(u) * xp.log(xp.maximum(1 - 2 * xp.abs(u), tiny)))
                         .astype(self.loc.dtype))
        return self.loc + self.scale * e

    def log_prob(self, value) -> Tensor:
        x = _value(value, self.loc)
        return -(2 * self.scale).log() - (x - self.loc).abs() / self.scale

    def cdf(self, value) -> Tensor:
        z = (_value(value, self.loc) - self.loc) / self.scale
        return 0.5 - 0.5 * ops.sign(z) * ops.expm1(-z.abs())

    def entropy(self) -> Tensor:
        return ops.broadcast_to(1 + (2 * self.scale).log(), self.batch_shape)


def _check_positive(who: str, name: str, t: Tensor) -> None:
    if t.array.size and not bool((t.array > 0).all()):
        raise ValueError(f"{who}: {name} must be > 0 everywhere (shape {t.shape}, min "
                         f"{float(t.array.min())})")


def _lbeta(concentration: Tensor) -> Tensor:
    """log B(a) = sum_k lgamma(a_k) - lgamma(sum_k a_k), over the last axis."""
    return ops.lgamma(concentration).sum(axis=-1) - ops.lgamma(concentration.sum(axis=-1))


def _gamma_draws(concentration: Tensor, shape: tuple, generator) -> Tensor:
    """Standard Gamma(a) draws of `shape` (no gradient), from the generator's stream."""
    from .random import _setup
    _, _, _, rng = _setup((), None, concentration.device, generator)
    a = concentration.xp.broadcast_to(concentration.detach().array, shape)
    g = rng.standard_gamma(a)
    return Tensor._make(concentration.xp.asarray(g).astype(concentration.dtype))


class Dirichlet(Distribution):
    """Dirichlet(concentration a) on the simplex of the last axis (K categories).

    log p(x) = sum_k (a_k - 1) log x_k - log B(a),   log B(a) = sum_k lgamma(a_k) - lgamma(a_0)
    H        = log B(a) + (a_0 - K) psi(a_0) - sum_k (a_k - 1) psi(a_k),   a_0 = sum_k a_k
    Sampling normalises independent Gamma(a_k) draws; there is no rsample (a reparameterised
    Gamma needs implicit gradients, Figurnov et al. 2018, not implemented).
    """

    def __init__(self, concentration, validate_args: bool = True):
        (self.concentration,) = _params(concentration)
        if self.concentration.ndim < 1:
            raise ValueError("Dirichlet: concentration needs at least one axis (the "
                             f"categories), got shape {self.concentration.shape}")
        if validate_args:
            _check_positive("Dirichlet", "concentration", self.concentration)
        self.batch_shape = tuple(self.concentration.shape[:-1])
        self.event_shape = tuple(self.concentration.shape[-1:])

    def __repr__(self) -> str:
        return f"Dirichlet(concentration: {self.concentration.shape})"

    @property
    def mean(self) -> Tensor:
        a = self.concentration
        return a / a.sum(axis=-1, keepdims=True)

    @property
    def variance(self) -> Tensor:
        a = self.concentration
        a0 = a.sum(axis=-1, keepdims=True)
        m = a / a0
        return m * (1 - m) / (a0 + 1)

    def sample(self, sample_shape=(), generator=None) -> Tensor:
        with no_grad():
            g = _gamma_draws(self.concentration, self._extended(sample_shape), generator)
            return g / g.sum(axis=-1, keepdims=True)

    def log_prob(self, value) -> Tensor:
        x = _value(value, self.concentration)
        a = self.concentration
        return ((a - 1) * _safe_log(x)).sum(axis=-1) - _lbeta(a)

    def entropy(self) -> Tensor:
        a = self.concentration
        a0 = a.sum(axis=-1)
        k = a.shape[-1]
        return (_lbeta(a) + (a0 - k) * ops.digamma(a0)
                - ((a - 1) * ops.digamma(a)).sum(axis=-1))


class Beta(Distribution):
    """Beta(concentration1 = a, concentration0 = b) on (0, 1), element-wise: the K = 2
    Dirichlet over (x, 1 - x).

    log p(x) = (a - 1) log x + (b - 1) log(1 - x) - log B(a, b)
    """

    def __init__(self, concentration1, concentration0, validate_args: bool = True):
        self.concentration1, self.concentration0 = _params(concentration1, concentration0)
        self.batch_shape = tuple(np.broadcast_shapes(self.concentration1.shape,
                                                     self.concentration0.shape))
        if validate_args:
            _check_positive("Beta", "concentration1", self.concentration1)
            _check_positive("Beta", "concentration0", self.concentration0)
        a = ops.broadcast_to(self.concentration1, self.batch_shape)
        b = ops.broadcast_to(self.concentration0, self.batch_shape)
        self._dirichlet = Dirichlet(ops.stack([a, b], axis=-1), validate_args=False)

    def __repr__(self) -> str:
        return f"Beta(batch: {self.batch_shape})"

    @property
    def mean(self) -> Tensor:
        return self._dirichlet.mean[..., 0]

    @property
    def variance(self) -> Tensor:
        return self._dirichlet.variance[..., 0]

    def sample(self, sample_shape=(), generator=None) -> Tensor:
        return self._dirichlet.sample(sample_shape, generator)[..., 0]

    def log_prob(self, value) -> Tensor:
        x = _value(value, self.concentration1)
        x = ops.broadcast_to(x, tuple(np.broadcast_shapes(x.shape, self.batch_shape)))
        return self._dirichlet.log_prob(ops.stack([x, 1 - x], axis=-1))     # (..., 2)

    def entropy(self) -> Tensor:
        return self._dirichlet.entropy()


class Gamma(Distribution):
    """Gamma(concentration a, rate b), element-wise, on x > 0.

    log p(x) = a log b + (a - 1) log x - b x - lgamma(a)
    H        = a - log b + lgamma(a) + (1 - a) psi(a)
    No rsample (as Dirichlet: a reparameterised Gamma needs implicit gradients, Figurnov et
    al. 2018, not implemented); sample() draws NumPy/CuPy's standard Gamma / b.
    """

    def __init__(self, concentration, rate, validate_args: bool = True):
        self.concentration, self.rate = _params(concentration, rate)
        self.batch_shape = tuple(np.broadcast_shapes(self.concentration.shape,
                                                     self.rate.shape))
        if validate_args:
            _check_positive("Gamma", "concentration", self.concentration)
            _check_positive("Gamma", "rate", self.rate)

    def __repr__(self) -> str:
        return f"Gamma(batch: {self.batch_shape})"

    @property
    def mean(self) -> Tensor:
        return ops.broadcast_to(self.concentration / self.rate, self.batch_shape)

    @property
    def variance(self) -> Tensor:
        return ops.broadcast_to(self.concentration / (self.rate * self.rate),
                                self.batch_shape)

    def sample(self, sample_shape=(), generator=None) -> Tensor:
        with no_grad():
            g = _gamma_draws(self.concentration, self._extended(sample_shape), generator)
            return g / self.rate.detach()

    def log_prob(self, value) -> Tensor:
        x = _value(value, self.concentration)
        a, b = self.concentration, self.rate
        return a * b.log() + (a - 1) * x.log() - b * x - ops.lgamma(a)

    def entropy(self) -> Tensor:
        a, b = self.concentration, self.rate
        return ops.broadcast_to(a - b.log() + ops.lgamma(a) + (1 - a) * ops.digamma(a),
                                self.batch_shape)


class Cauchy(Distribution):
    """Cauchy(loc, scale), element-wise: no mean, no variance.

    log p(x) = -log(pi scale) - log(1 + ((x - loc) / scale)^2)      H = log(4 pi scale)
    rsample:  x = loc + scale tan(pi (u - 1/2)),  u ~ U(0, 1) (the inverse CDF)
    """

    has_rsample = True

    def __init__(self, loc, scale, validate_args: bool = True):
        self.loc, self.scale = _params(loc, scale)
        self.batch_shape = tuple(np.broadcast_shapes(self.loc.shape, self.scale.shape))
        if validate_args:
            _check_positive("Cauchy", "scale", self.scale)

    def __repr__(self) -> str:
        return f"Cauchy(loc: {self.loc.shape}, scale: {self.scale.shape})"

    def rsample(self, sample_shape=(), generator=None) -> Tensor:
        u = rand(self._extended(sample_shape), dtype=self.loc.dtype, device=self.loc.device,
                 generator=generator).array
        e = Tensor._make(self.loc.xp.tan(math.pi * (u - 0.5)).astype(self.loc.dtype))
        return self.loc + self.scale * e

    def log_prob(self, value) -> Tensor:
        z = (_value(value, self.loc) - self.loc) / self.scale
        return -math.log(math.pi) - self.scale.log() - ops.log1p(z * z)

    def cdf(self, value) -> Tensor:
        z = (_value(value, self.loc) - self.loc) / self.scale
        return 0.5 + _atan(z) / math.pi

    def entropy(self) -> Tensor:
        return ops.broadcast_to(math.log(4 * math.pi) + self.scale.log(), self.batch_shape)


def _atan(z: Tensor) -> Tensor:
    """arctan without a gradient path (only the cdf uses it)."""
    return Tensor._make(z.xp.arctan(z.detach().array))


class OneHotCategorical(Distribution):
    """Categorical over one-hot vectors of the last axis: log p(x) = <x, log softmax(logits)>,
    samples are one-hot rows (PyTorch's OneHotCategorical)."""

    def __init__(self, probs=None, logits=None, validate_args: bool = True):
        self._categorical = Categorical(probs=probs, logits=logits,
                                        validate_args=validate_args)
        self.batch_shape = tuple(self._categorical.batch_shape)
        self.event_shape = (self._categorical.num_events,)

    def __repr__(self) -> str:
        return f"OneHotCategorical(batch: {self.batch_shape}, events: {self.event_shape[0]})"

    @property
    def probs(self) -> Tensor:
        return self._categorical.probs

    @property
    def logits(self) -> Tensor:
        return self._categorical.logits

    @property
    def mean(self) -> Tensor:
        return self.probs

    def sample(self, sample_shape=(), generator=None) -> Tensor:
        k = self._categorical.sample(sample_shape, generator)
        return ops.one_hot(k, self.event_shape[0], dtype=self.probs.dtype)

    def log_prob(self, value) -> Tensor:
        x = _value(value, self.logits)
        return (x * self.logits).sum(axis=-1)

    def entropy(self) -> Tensor:
        return self._categorical.entropy()


class MultivariateNormal(Distribution):
    """N(loc, Sigma) over the last axis, Sigma = L L^T given by its Cholesky factor
    L = scale_tril (lower triangular, positive diagonal).

    log p(x) = -1/2 ||L^{-1}(x - loc)||^2 - sum_i log L_ii - D/2 log(2 pi)
    H        = D/2 (1 + log(2 pi)) + sum_i log L_ii
    rsample:  x = loc + L eps, eps ~ N(0, I)
    L^{-1} is applied by forward substitution in Tensor ops (D steps), so every derivative,
    to any order, comes from the ops' own rules.
    """

    has_rsample = True

    def __init__(self, loc, scale_tril, validate_args: bool = True):
        self.loc, self.scale_tril = _params(loc, scale_tril)
        L = self.scale_tril
        if self.loc.ndim < 1 or L.ndim < 2 or L.shape[-1] != L.shape[-2] \
                or L.shape[-1] != self.loc.shape[-1]:
            raise ValueError(f"MultivariateNormal: loc (..., D) and scale_tril (..., D, D) "
                             f"expected, got {self.loc.shape} and {L.shape}")
        d = L.shape[-1]
        if validate_args and L.array.size:
            xp = L.xp
            diag = xp.diagonal(L.array, axis1=-2, axis2=-1)
            upper = xp.triu(L.array, 1)
            if not bool((diag > 0).all()) or bool((upper != 0).any()):
                raise ValueError("MultivariateNormal: scale_tril must be lower triangular "
                                 f"with a positive diagonal (shape {L.shape})")
        self.batch_shape = tuple(np.broadcast_shapes(self.loc.shape[:-1], L.shape[:-2]))
        self.event_shape = (d,)

    def __repr__(self) -> str:
        return f"MultivariateNormal(loc: {self.loc.shape}, scale_tril: {self.scale_tril.shape})"

    @property
    def mean(self) -> Tensor:
        return ops.broadcast_to(self.loc, self.batch_shape + self.event_shape)

    @property
    def covariance_matrix(self) -> Tensor:
        L = self.scale_tril
        return (L.unsqueeze(-2) * L.unsqueeze(-3)).sum(axis=-1)       # (..., D, D): L L^T

    @property
    def variance(self) -> Tensor:
        return ops.broadcast_to((self.scale_tril ** 2).sum(axis=-1),
                                self.batch_shape + self.event_shape)

    def _half_log_det(self) -> Tensor:
        """sum_i log L_ii = 1/2 log det Sigma."""
        d = self.event_shape[0]
        return ops.stack([self.scale_tril[..., i, i] for i in range(d)], axis=-1).log() \
            .sum(axis=-1)

    def rsample(self, sample_shape=(), generator=None) -> Tensor:
        eps = randn(self._extended(sample_shape), dtype=self.loc.dtype,
                    device=self.loc.device, generator=generator)     # (*S, *batch, D)
        return self.loc + (self.scale_tril * eps.unsqueeze(-2)).sum(axis=-1)   # L eps

    def log_prob(self, value) -> Tensor:
        x = _value(value, self.loc)
        y = _tril_solve(self.scale_tril, (x - self.loc).unsqueeze(-1)).squeeze(-1)  # (..., D)
        d = self.event_shape[0]
        return -0.5 * (y * y).sum(axis=-1) - self._half_log_det() - d * _HALF_LOG_2PI

    def entropy(self) -> Tensor:
        d = self.event_shape[0]
        h = d * (0.5 + _HALF_LOG_2PI) + self._half_log_det()
        return ops.broadcast_to(h, self.batch_shape)


def _tril_solve(L: Tensor, B: Tensor) -> Tensor:
    """X = L^{-1} B for lower-triangular L (..., D, D) and B (..., D, K), by forward
    substitution: X_i = (B_i - sum_{j<i} L_ij X_j) / L_ii."""
    rows = []
    for i in range(L.shape[-1]):
        acc = B[..., i, :]                                              # (..., K)
        if i:
            done = ops.stack(rows, axis=-2)                             # (..., i, K)
            acc = acc - (L[..., i, :i].unsqueeze(-1) * done).sum(axis=-2)
        rows.append(acc / L[..., i, i].unsqueeze(-1))
    return ops.stack(rows, axis=-2)                                     # (..., D, K)


class Independent(Distribution):
    """Reinterpret the last `reinterpreted_batch_ndims` batch axes of `base` as event axes:
    log_prob and entropy are summed over them, e.g. a diagonal Gaussian over vectors,
    Independent(Normal(mu, sigma), 1), whose log_prob(x) of (B, D) is (B,)."""

    def __init__(self, base_distribution: Distribution, reinterpreted_batch_ndims: int):
        n = int(reinterpreted_batch_ndims)
        if not 0 <= n <= len(base_distribution.batch_shape):
            raise ValueError(f"Independent: reinterpreted_batch_ndims={n} must be in [0, "
                             f"{len(base_distribution.batch_shape)}] for a base with "
                             f"batch_shape {base_distribution.batch_shape}")
        self.base_dist, self.reinterpreted_batch_ndims = base_distribution, n
        cut = len(base_distribution.batch_shape) - n
        self.batch_shape = tuple(base_distribution.batch_shape[:cut])
        self.event_shape = tuple(base_distribution.batch_shape[cut:]) + \
            tuple(base_distribution.event_shape)
        self.has_rsample = base_distribution.has_rsample

    def __repr__(self) -> str:
        return f"Independent({self.base_dist!r}, {self.reinterpreted_batch_ndims})"

    def _sum(self, t: Tensor) -> Tensor:
        n = self.reinterpreted_batch_ndims
        return t.sum(axis=tuple(range(-n, 0))) if n else t

    @property
    def mean(self) -> Tensor:
        return self.base_dist.mean

    @property
    def variance(self) -> Tensor:
        return self.base_dist.variance

    def sample(self, sample_shape=(), generator=None) -> Tensor:
        return self.base_dist.sample(sample_shape, generator)

    def rsample(self, sample_shape=(), generator=None) -> Tensor:
        return self.base_dist.rsample(sample_shape, generator)

    def log_prob(self, value) -> Tensor:
        return self._sum(self.base_dist.log_prob(value))

    def entropy(self) -> Tensor:
        return self._sum(self.base_dist.entropy())


def _temperature(temperature, like: Tensor) -> Tensor:
    """tau as a Tensor in the logits' dtype (a Tensor keeps its graph: tau can be learned)."""
    if isinstance(temperature, Tensor):
        return temperature if temperature.dtype == like.dtype else temperature.to(like.dtype)
    return _value(temperature, like)


class RelaxedBernoulli(Distribution):
    """The binary Concrete / relaxed Bernoulli (Maddison et al. 2017, Sec. 3.3; Jang et al.
    2017) at temperature tau, on (0, 1): a differentiable stand-in for Bernoulli(logits=l).

    rsample:  y = sigmoid((l + log u - log(1 - u)) / tau),  u ~ U(0, 1)  (logistic noise)
    log p(y) = log tau + d - 2 softplus(d) - log y - log(1 - y),  d = l - tau logit(y)
    (the logistic density of tau logit(y) - l, carried through the sigmoid). As tau -> 0
    the draws approach Bernoulli(sigmoid(l)) samples.
    """

    has_rsample = True

    def __init__(self, temperature, probs=None, logits=None, validate_args: bool = True):
        base = Bernoulli(probs=probs, logits=logits, validate_args=validate_args)
        self.logits = base.logits
        self.temperature = _temperature(temperature, self.logits)
        if validate_args:
            _check_positive("RelaxedBernoulli", "temperature", self.temperature)
        self.batch_shape = tuple(np.broadcast_shapes(self.logits.shape,
                                                     self.temperature.shape))

    def __repr__(self) -> str:
        return f"RelaxedBernoulli(batch: {self.batch_shape})"

    @property
    def probs(self) -> Tensor:
        return ops.sigmoid(self.logits)

    def rsample(self, sample_shape=(), generator=None) -> Tensor:
        xp = self.logits.xp
        u = rand(self._extended(sample_shape), dtype=self.logits.dtype,
                 device=self.logits.device, generator=generator).array
        tiny = float(np.finfo(u.dtype).tiny)
        u = xp.clip(u, tiny, 1 - float(np.finfo(u.dtype).eps))
        noise = Tensor._make((xp.log(u) - xp.log1p(-u)).astype(self.logits.dtype))
        return ops.sigmoid((self.logits + noise) / self.temperature)

    def log_prob(self, value) -> Tensor:
        y = _value(value, self.logits)
        log_y, log_1my = _safe_log(y), _safe_log(1 - y)
        d = self.logits - self.temperature * (log_y - log_1my)
        return self.temperature.log() + d - 2 * ops.softplus(d) - log_y - log_1my


class RelaxedOneHotCategorical(Distribution):
    """The Concrete / Gumbel-softmax distribution (Maddison et al. 2017, eq. 10; Jang et al.
    2017, eq. 2-3) at temperature tau on the simplex of the last axis (K classes).

    rsample:  y = softmax((log pi + g) / tau),  g_k = -log(-log u_k) (Gumbel noise)
    log p(y) = log (K-1)! + (K-1) log tau + sum_k (log pi_k - (tau + 1) log y_k)
               - K logsumexp_k(log pi_k - tau log y_k)
    As tau -> 0 the draws approach one-hot Categorical(pi) samples.
    """

    has_rsample = True

    def __init__(self, temperature, probs=None, logits=None, validate_args: bool = True):
        base = Categorical(probs=probs, logits=logits, validate_args=validate_args)
        self.logits = base.logits                                    # normalised log pi
        self.temperature = _temperature(temperature, self.logits)
        if validate_args:
            _check_positive("RelaxedOneHotCategorical", "temperature", self.temperature)
        self.batch_shape = tuple(np.broadcast_shapes(self.logits.shape[:-1],
                                                     self.temperature.shape))
        self.event_shape = tuple(self.logits.shape[-1:])

    def __repr__(self) -> str:
        return f"RelaxedOneHotCategorical(batch: {self.batch_shape}, classes: " \
               f"{self.event_shape[0]})"

    @property
    def probs(self) -> Tensor:
        return self.logits.exp()

    def _tau(self) -> Tensor:
        return self.temperature.unsqueeze(-1) if self.temperature.ndim else self.temperature

    def rsample(self, sample_shape=(), generator=None) -> Tensor:
        xp = self.logits.xp
        u = rand(self._extended(sample_shape), dtype=self.logits.dtype,
                 device=self.logits.device, generator=generator).array
        u = xp.clip(u, float(np.finfo(u.dtype).tiny), 1 - float(np.finfo(u.dtype).eps))
        gumbel = Tensor._make((-xp.log(-xp.log(u))).astype(self.logits.dtype))
        return ops.softmax((self.logits + gumbel) / self._tau(), axis=-1)

    def log_prob(self, value) -> Tensor:
        y = _value(value, self.logits)
        k = self.event_shape[0]
        tau = self._tau()
        log_y = _safe_log(y)
        scores = self.logits - tau * log_y                                # (..., K)
        return math.lgamma(k) + (k - 1) * self.temperature.log() \
            + (self.logits - (tau + 1) * log_y).sum(axis=-1) \
            - k * ops.logsumexp(scores, axis=-1)


class MixtureSameFamily(Distribution):
    """p(x) = sum_k pi_k p_k(x): a Categorical `mixture_distribution` over the last batch
    axis of `component_distribution` (batch (..., K), any event shape).

    log p(x) = logsumexp_k(log pi_k + log p_k(x))
    """

    def __init__(self, mixture_distribution: Categorical, component_distribution: Distribution):
        if not isinstance(mixture_distribution, Categorical):
            raise TypeError("MixtureSameFamily: mixture_distribution must be a Categorical, "
                            f"got {type(mixture_distribution).__name__}")
        cb = tuple(component_distribution.batch_shape)
        if not cb or cb[-1] != mixture_distribution.num_events:
            raise ValueError(f"MixtureSameFamily: components' batch_shape {cb} must end in "
                             f"the {mixture_distribution.num_events} mixture classes")
        self.mixture_distribution = mixture_distribution
        self.component_distribution = component_distribution
        self.batch_shape = tuple(np.broadcast_shapes(cb[:-1], mixture_distribution.batch_shape))
        self.event_shape = tuple(component_distribution.event_shape)

    def __repr__(self) -> str:
        return f"MixtureSameFamily({self.mixture_distribution!r}, " \
               f"{self.component_distribution!r})"

    def _pad(self, t: Tensor) -> Tensor:
        """(..., K) mixture weights -> (..., K, 1, ..., 1) against the event axes."""
        return t.reshape(tuple(t.shape) + (1,) * len(self.event_shape))

    @property
    def mean(self) -> Tensor:
        w = self._pad(self.mixture_distribution.probs)
        return (w * self.component_distribution.mean).sum(axis=-1 - len(self.event_shape))

    def log_prob(self, value) -> Tensor:
        like = self.mixture_distribution.logits
        x = _value(value, like)
        x = x.unsqueeze(-1 - len(self.event_shape))                      # (..., 1, *event)
        lp = self.component_distribution.log_prob(x)                     # (..., K)
        return ops.logsumexp(lp + self.mixture_distribution.logits, axis=-1)

    def sample(self, sample_shape=(), generator=None) -> Tensor:
        with no_grad():
            k = self.mixture_distribution.sample(sample_shape, generator)       # (*S, ...)
            draws = self.component_distribution.sample(sample_shape, generator)  # (*S,..,K,*e)
            ne = len(self.event_shape)
            xp = draws.xp
            index = k.array.reshape(k.shape + (1,) * (ne + 1))
            index = xp.broadcast_to(index, draws.shape[:-1 - ne] + (1,) + draws.shape[
                draws.ndim - ne:])
            out = xp.take_along_axis(draws.array, index, axis=-1 - ne)
            return Tensor._make(xp.squeeze(out, axis=-1 - ne))


def standard_normal(like: Tensor) -> Normal:
    """N(0, 1) with scalar parameters in `like`'s dtype and device: the prior of a VAE and the
    base of a flow, broadcasting against any value."""
    zero = Tensor(like.xp.zeros((), dtype=like.dtype), device=like.device)
    return Normal(zero, zero + 1.0, validate_args=False)


def kl_divergence(p: Distribution, q: Distribution) -> Tensor:
    """KL(p || q), analytic, over the batch (summed over event axes).

    Normal:      log(s_q / s_p) + (s_p^2 + (m_p - m_q)^2) / (2 s_q^2) - 1/2
    Bernoulli:   p log(p / q) + (1 - p) log((1 - p) / (1 - q))
    Categorical: sum_k p_k (log p_k - log q_k)
    Laplace:     log(b_q / b_p) + |m_p - m_q| / b_q + (b_p / b_q) exp(-|m_p - m_q| / b_p) - 1
    Dirichlet:   log B(b) - log B(a) + sum_k (a_k - b_k)(psi(a_k) - psi(a_0))   (p = Dir(a))
    Beta:        the K = 2 Dirichlet
    MultivariateNormal: 1/2 (||L_q^{-1} L_p||_F^2 + ||L_q^{-1}(m_q - m_p)||^2 - D)
                        + sum log diag L_q - sum log diag L_p
    Independent: the base KL summed over the reinterpreted axes
    """
    if type(p) is not type(q):
        raise NotImplementedError(f"kl_divergence: no analytic form for "
                                  f"{type(p).__name__} || {type(q).__name__}")
    if isinstance(p, Normal):
        var_ratio = (p.scale / q.scale) ** 2
        t1 = ((p.loc - q.loc) / q.scale) ** 2
        return 0.5 * (var_ratio + t1 - 1 - var_ratio.log())
    if isinstance(p, Bernoulli):
        lp, l1p = p._log_p_and_log_1mp()
        lq, l1q = q._log_p_and_log_1mp()
        pp = p.probs
        return pp * (lp - lq) + (1 - pp) * (l1p - l1q)
    if isinstance(p, Categorical):
        if p.num_events != q.num_events:
            raise ValueError(f"kl_divergence: Categoricals over {p.num_events} and "
                             f"{q.num_events} classes")
        return (p.probs * (p.logits - q.logits)).sum(axis=-1)
    if isinstance(p, Laplace):
        dist = (p.loc - q.loc).abs()
        return (q.scale / p.scale).log() + dist / q.scale \
            + (p.scale / q.scale) * (-dist / p.scale).exp() - 1
    if isinstance(p, Beta):
        return kl_divergence(p._dirichlet, q._dirichlet)
    if isinstance(p, Dirichlet):
        a, b = p.concentration, q.concentration
        a0 = a.sum(axis=-1, keepdims=True)
        return _lbeta(b) - _lbeta(a) + ((a - b) * (ops.digamma(a) - ops.digamma(a0))) \
            .sum(axis=-1)
    if isinstance(p, MultivariateNormal):
        if p.event_shape != q.event_shape:
            raise ValueError(f"kl_divergence: MultivariateNormals of {p.event_shape} and "
                             f"{q.event_shape}")
        d = p.event_shape[0]
        m = _tril_solve(q.scale_tril, p.scale_tril)                    # (..., D, D)
        y = _tril_solve(q.scale_tril, (q.loc - p.loc).unsqueeze(-1)).squeeze(-1)
        return 0.5 * ((m * m).sum(axis=(-2, -1)) + (y * y).sum(axis=-1) - d) \
            + q._half_log_det() - p._half_log_det()
    if isinstance(p, Independent):
        if p.reinterpreted_batch_ndims != q.reinterpreted_batch_ndims:
            raise ValueError("kl_divergence: Independents over different numbers of axes")
        return p._sum(kl_divergence(p.base_dist, q.base_dist))
    raise NotImplementedError(f"kl_divergence: no analytic form for "
                              f"{type(p).__name__} || {type(q).__name__}")
