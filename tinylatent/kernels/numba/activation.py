"""Numba CPU kernel for the exact GELU (Hendrycks & Gimpel 2016), value and derivative in one
pass, and the NumPy reference twin it is tested against.

    y = x Phi(x),   Phi(x) = (1 + erf(x / sqrt 2)) / 2
    dy/dx = Phi(x) + x phi(x),   phi(x) = exp(-x^2 / 2) / sqrt(2 pi)

The backward is then one multiply, gx = g dy/dx, with no second pass over erf.

float32: Phi from the erfc approximation of Abramowitz & Stegun 7.1.26 (absolute error of erf
below 1.5e-7, about float32's resolution; PyTorch's vectorized CPU erf uses the same form):
    Q(|x|) = 0.5 t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) exp(-x^2 / 2),  t = 1 / (1 + p |x| / sqrt 2)
    Phi(x) = 1 - Q for x >= 0, Q for x < 0.
exp(-x^2/2) is shared by Q and phi and comes from NumPy's SIMD exp (Numba's scalar exp is
~5x slower and blocks vectorization); the remaining loop has no calls and vectorizes (with
NumPy's error model, and with exp(-x^2/2) in its own buffer, apart from the outputs).
float64: math.erf per element (exact to double precision; slower, used by gradchecks).
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

__all__ = ["gelu_forward", "gelu_forward_reference"]

# no nnan/ninf: a NaN or inf input must come out as the reference gives it. error_model
# "numpy": Python's model checks every float division for a zero divisor (to raise
# ZeroDivisionError), and that branch alone keeps LLVM from vectorizing the loop (4x slower)
_JIT = dict(nopython=True, cache=True, nogil=True, error_model="numpy",
            fastmath={"contract", "arcp", "nsz", "afn"})
_P, _A = 0.3275911, (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)


@nb.jit(**_JIT)
def _gelu_f32(x, e, y, d):  # pragma: no cover - compiled
    # e holds exp(-x^2/2) on entry
    p = np.float32(_P * _INV_SQRT2)
    a1, a2, a3 = np.float32(_A[0]), np.float32(_A[1]), np.float32(_A[2])
    a4, a5 = np.float32(_A[3]), np.float32(_A[4])
    half, one, c = np.float32(0.5), np.float32(1.0), np.float32(_INV_SQRT2PI)
    for i in range(x.size):
        v = x[i]
        ei = e[i]
        t = one / (one + p * abs(v))
        q = half * t * (a1 + t * (a2 + t * (a3 + t * (a4 + t * a5)))) * ei
        phi_cdf = one - q if v >= 0 else q
        y[i] = v * phi_cdf
        d[i] = phi_cdf + v * c * ei


@nb.jit(nopython=True, cache=True, nogil=True)
def _gelu_f64(x, y, d):  # pragma: no cover - compiled
    for i in range(x.size):
        v = x[i]
        phi_cdf = 0.5 * (1.0 + math.erf(v * _INV_SQRT2))
        y[i] = v * phi_cdf
        d[i] = phi_cdf + v * _INV_SQRT2PI * math.exp(-0.5 * v * v)


def gelu_forward(x: np.ndarray, work: np.ndarray | None = None):
    """(y, dydx), both shaped like x (float32 or float64).

    work: float32 only, a scratch array of x.size elements for exp(-x^2/2) (the backend
    passes a reused one; None allocates). It must not be y or dydx: the loop vectorizes only
    when LLVM's runtime check finds its input and output arrays apart."""
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"gelu kernel: x must be float32 or float64, got {x.dtype}")
    flat = np.ascontiguousarray(x).reshape(-1)
    y = np.empty_like(flat)
    d = np.empty_like(flat)
    if x.dtype == np.float32:
        e = np.empty_like(flat) if work is None else work.reshape(-1)
        if e.shape != flat.shape or e.dtype != flat.dtype:
            raise ValueError(f"gelu kernel: work must be {flat.size} float32 values, got "
                             f"{e.dtype} {e.shape}")
        with np.errstate(over="ignore"):         # x^2 -> inf: exp(-inf) = 0, as it should
            np.multiply(flat, flat, out=e)
        np.multiply(e, np.float32(-0.5), out=e)
        np.exp(e, out=e)
        _gelu_f32(flat, e, y, d)
    else:
        _gelu_f64(flat, y, d)
    return y.reshape(x.shape), d.reshape(x.shape)


# ---------------------------------------------------------------------- reference twin
def gelu_forward_reference(x, xp=np):
    """The same (y, dydx) with the exact erf (scipy / cupyx.scipy), in plain array ops."""
    if xp is np:
        from scipy.special import erf
    else:  # pragma: no cover - GPU
        from cupyx.scipy.special import erf
    phi_cdf = (0.5 * (1.0 + erf(x * _INV_SQRT2))).astype(x.dtype, copy=False)
    y = x * phi_cdf
    d = phi_cdf + x * xp.exp(-0.5 * x * x).astype(x.dtype, copy=False) * x.dtype.type(_INV_SQRT2PI)
    return y, d
