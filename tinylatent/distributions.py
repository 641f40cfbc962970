"""Probability distributions for latent-variable models: Normal, Bernoulli, Categorical and
analytic KL divergences between them. Every density is written in Tensor ops, so `log_prob`,
`entropy`, `rsample` and `kl_divergence` are differentiable in the parameters (gradchecked).

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
from .tensor import Tensor, get_default_dtype

__all__ = ["Distribution", "Normal", "Bernoulli", "Categorical", "kl_divergence"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _params(*values):
    """Turn numbers / arrays / Tensors into Tensors of one float dtype and device."""
    like = next((v for v in values if isinstance(v, Tensor)), None)
    dtype = like.dtype if like is not None and like.dtype.kind == "f" else get_default_dtype()
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
        """A draw of shape sample_shape + batch_shape + event_shape, without gradient."""
        raise NotImplementedError

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

    def sample(self, sample_shape=(), generator=None) -> Tensor:
        with no_grad():
            return self.rsample(sample_shape, generator).detach()

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


def kl_divergence(p: Distribution, q: Distribution) -> Tensor:
    """KL(p || q), analytic, element-wise over the batch (summed over Categorical classes).

    Normal:      log(s_q / s_p) + (s_p^2 + (m_p - m_q)^2) / (2 s_q^2) - 1/2
    Bernoulli:   p log(p / q) + (1 - p) log((1 - p) / (1 - q))
    Categorical: sum_k p_k (log p_k - log q_k)
    """
    if isinstance(p, Normal) and isinstance(q, Normal):
        var_ratio = (p.scale / q.scale) ** 2
        t1 = ((p.loc - q.loc) / q.scale) ** 2
        return 0.5 * (var_ratio + t1 - 1 - var_ratio.log())
    if isinstance(p, Bernoulli) and isinstance(q, Bernoulli):
        lp, l1p = p._log_p_and_log_1mp()
        lq, l1q = q._log_p_and_log_1mp()
        pp = p.probs
        return pp * (lp - lq) + (1 - pp) * (l1p - l1q)
    if isinstance(p, Categorical) and isinstance(q, Categorical):
        if p.num_events != q.num_events:
            raise ValueError(f"kl_divergence: Categoricals over {p.num_events} and "
                             f"{q.num_events} classes")
        return (p.probs * (p.logits - q.logits)).sum(axis=-1)
    raise NotImplementedError(f"kl_divergence: no analytic form for "
                              f"{type(p).__name__} || {type(q).__name__}")
