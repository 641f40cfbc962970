"""Random numbers: a Generator per stream, one default stream, `manual_seed`.

A Generator wraps NumPy's PCG64 on the CPU (and CuPy's generator for CUDA tensors). The same
seed gives the same numbers on the CPU, and the state can be saved to a checkpoint as plain
integers (`get_state` / `set_state`), so a resumed run draws exactly what the original would.
"""
from __future__ import annotations

import numpy as np

from .backend import CPU, Device
from .tensor import Tensor, get_default_dtype, is_float_dtype

__all__ = ["Generator", "manual_seed", "default_generator", "get_rng_state", "set_rng_state",
           "randn", "rand", "randint", "normal", "uniform", "bernoulli", "randperm", "multinomial",
           "dropout_mask", "randn_like", "rand_like"]


class Generator:
    """An independent stream of random numbers."""

    def __init__(self, seed: int | None = None, device="cpu"):
        self.device = Device(device)
        self.manual_seed(seed)

    def manual_seed(self, seed: int | None) -> "Generator":
        self.seed = seed
        self._np = np.random.Generator(np.random.PCG64(seed))
        self._cp = None
        return self

    def _rng(self, dev: Device):
        if dev.type == "cpu":
            return self._np
        if self._cp is None:  # pragma: no cover - GPU
            cp = dev.xp
            # derive the GPU stream from the CPU stream so one seed fixes both
            self._cp = cp.random.default_rng(int(self._np.integers(0, 2**63 - 1)))
        return self._cp  # pragma: no cover - GPU

    def get_state(self) -> dict:
        """The CPU stream's state as JSON-able integers (for checkpoints)."""
        return {"seed": self.seed, "bit_generator": self._np.bit_generator.state}

    def set_state(self, state: dict) -> None:
        self.seed = state.get("seed")
        self._np.bit_generator.state = state["bit_generator"]
        self._cp = None


default_generator = Generator(None)


def manual_seed(seed: int) -> Generator:
    """Seed the default generator (every random function without `generator=`)."""
    return default_generator.manual_seed(int(seed))


def get_rng_state() -> dict:
    return default_generator.get_state()


def set_rng_state(state: dict) -> None:
    default_generator.set_state(state)


def _setup(size, dtype, device, generator):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    dev = Device(device) if device is not None else CPU
    g = generator if generator is not None else default_generator
    return tuple(size), (np.dtype(dtype) if dtype is not None else get_default_dtype()), dev, \
        g._rng(dev)


def _sampling_dtype(dtype: np.dtype) -> np.dtype:
    """The generators draw float32/float64 only: float16 and bfloat16 are drawn in float32
    and rounded once."""
    return dtype if dtype.itemsize >= 4 else np.dtype(np.float32)


def randn(*size, dtype=None, device=None, generator=None, requires_grad=False) -> Tensor:
    """Standard normal samples."""
    size, dtype, dev, rng = _setup(size, dtype, device, generator)
    t = Tensor._make(rng.standard_normal(size, dtype=_sampling_dtype(dtype)).astype(dtype,
                                                                               copy=False))
    return t.requires_grad_(requires_grad) if requires_grad else t


def rand(*size, dtype=None, device=None, generator=None, requires_grad=False) -> Tensor:
    """Uniform samples on [0, 1)."""
    size, dtype, dev, rng = _setup(size, dtype, device, generator)
    t = Tensor._make(rng.random(size, dtype=_sampling_dtype(dtype)).astype(dtype, copy=False))
    return t.requires_grad_(requires_grad) if requires_grad else t


def normal(mean=0.0, std=1.0, size=(), dtype=None, device=None, generator=None) -> Tensor:
    size = (size,) if isinstance(size, int) else tuple(size)
    z = randn(size, dtype=dtype, device=device, generator=generator)
    return Tensor._make(z.xp.asarray(z.array * std + mean))  # (0-d arithmetic gives a scalar)


def uniform(low=0.0, high=1.0, size=(), dtype=None, device=None, generator=None) -> Tensor:
    size = (size,) if isinstance(size, int) else tuple(size)
    u = rand(size, dtype=dtype, device=device, generator=generator)
    return Tensor._make(u.xp.asarray(u.array * (high - low) + low))


def randint(low: int, high: int | None = None, size=(), dtype="int64", device=None,
            generator=None) -> Tensor:
    """Integers uniform on [low, high) (or [0, low) with one bound)."""
    if high is None:
        low, high = 0, low
    size = (size,) if isinstance(size, int) else tuple(size)
    size, dtype, dev, rng = _setup((size,), dtype, device, generator)
    return Tensor._make(rng.integers(low, high, size=size, dtype=dtype))


def bernoulli(probs, generator=None) -> Tensor:
    """Samples in {0, 1} with P(1) = probs elementwise (no gradient)."""
    p = probs if isinstance(probs, Tensor) else Tensor(probs)
    _, _, dev, rng = _setup((), None, p.device, generator)
    floating = is_float_dtype(p.dtype)
    u = rng.random(p.shape, dtype=_sampling_dtype(p.dtype) if floating else np.float64)
    hit = p.xp.asarray(u < p.array)
    return Tensor._make(hit.astype(p.dtype if floating else get_default_dtype()))


def multinomial(probs, num_samples: int, replacement: bool = False,
                generator=None) -> Tensor:
    """Category indices drawn with P(i) proportional to probs[..., i] (rows need not sum to
    1), shape (..., num_samples), int64. Without replacement: the Gumbel-top-k trick (Vieira
    2014; Kool et al. 2019, Sec. 3), the k largest log p_i + Gumbel noise."""
    p = probs if isinstance(probs, Tensor) else Tensor(probs)
    if p.ndim not in (1, 2) or not is_float_dtype(p.dtype):
        raise ValueError(f"multinomial: expected 1-D or 2-D float probabilities, got shape "
                         f"{p.shape} and dtype {p.dtype}")
    a = p.array.astype(np.float64)
    xp = p.xp
    if bool((a < 0).any()) or not bool(xp.isfinite(a).all()) or bool((a.sum(-1) <= 0).any()):
        raise ValueError("multinomial: probabilities must be finite, >= 0, with a positive sum")
    n_cat = a.shape[-1]
    if not replacement and num_samples > n_cat:
        raise ValueError(f"multinomial: cannot draw {num_samples} samples without "
                         f"replacement from {n_cat} categories")
    _, _, dev, rng = _setup((), None, p.device, generator)
    if replacement:   # inverse CDF: the first i whose cumulative sum exceeds u * total
        cdf = xp.cumsum(a, axis=-1)
        u = rng.random(a.shape[:-1] + (num_samples,)) * cdf[..., -1:]
        flat_cdf, flat_u = cdf.reshape(-1, n_cat), u.reshape(-1, num_samples)
        idx = xp.stack([xp.searchsorted(c, v, side="right") for c, v in zip(flat_cdf, flat_u)])
        return Tensor._make(xp.minimum(idx, n_cat - 1).reshape(u.shape).astype(np.int64))
    gumbel = -xp.log(-xp.log(rng.random(a.shape)))
    with np.errstate(divide="ignore"):
        keys = xp.where(a > 0, xp.log(a), -xp.inf) + gumbel
    order = xp.argsort(-keys, axis=-1, kind="stable")[..., :num_samples]
    return Tensor._make(order.astype(np.int64))


def randperm(n: int, device=None, generator=None) -> Tensor:
    _, _, dev, rng = _setup((), None, device, generator)
    return Tensor._make(rng.permutation(n).astype(np.int64))


def dropout_mask(shape, p: float, dtype=None, device=None, generator=None) -> Tensor:
    """Inverted-dropout mask: 0 with probability p, else 1/(1-p), so E[mask] = 1."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    u = rand(tuple(shape), dtype=dtype, device=device, generator=generator)
    keep = u.xp.asarray(u.array >= p)
    return Tensor._make(u.xp.asarray(keep.astype(u.dtype) * (1.0 / (1.0 - p))))


def randn_like(t: Tensor, generator=None) -> Tensor:
    return randn(t.shape, dtype=t.dtype, device=t.device, generator=generator)


def rand_like(t: Tensor, generator=None) -> Tensor:
    return rand(t.shape, dtype=t.dtype, device=t.device, generator=generator)
