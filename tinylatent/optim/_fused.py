"""Numba kernels for the optimizers' hot loops (CPU only; imported lazily by adam.py).

One pass over each parameter reads p, grad, m, v and writes p, m, v: NumPy's reference path
makes about ten passes and allocates temporaries. The loop is serial on purpose: with
`parallel=True` the kernel's threads fight OpenBLAS's for the same cores and the whole
training step gets slower.

Denormals: with beta1 = 0.9 the first moment of a parameter whose gradient is exactly zero
(e.g. weights from MNIST's always-black border pixels) decays below float32's smallest
normal number (1.2e-38) after ~800 steps, and v follows later. x86 CPUs handle denormal
operands in microcode, 10-100x slower per operation, which slowed whole epochs 2-6x. The
kernel therefore stores |m| or v below that threshold as exactly 0 ("flush to zero" for these
two buffers only, instead of setting the FTZ/DAZ flags, which would change every NumPy
computation in the process). The update such a value would make is below lr * 1e-30, far
under float32 resolution of any parameter, so nothing observable changes.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["adam_step", "adam_coefficients"]


@njit(cache=True, nogil=True, error_model="numpy")
def _adam_kernel(p, g, m, v, vmax, coef, amsgrad, maximize):  # pragma: no cover - compiled
    # error_model="numpy": no ZeroDivisionError check in the loop, so LLVM can vectorize it
    # (4x faster). coef has p's dtype, so float32 parameters are updated in float32
    # arithmetic like PyTorch's, and float64 ones in float64.
    decay, wd, one_m_b1, b2, one_m_b2 = coef[0], coef[1], coef[2], coef[3], coef[4]
    step_size, inv_bc2_sqrt, eps, tiny = coef[5], coef[6], coef[7], coef[8]
    zero = coef[9]
    for i in range(p.size):
        gi = -g[i] if maximize else g[i]
        pi = p[i] * decay                            # AdamW: decoupled decay p *= 1 - lr*wd
        gi = gi + wd * pi                            # Adam: L2 penalty folded into the grad
        mi = m[i]
        mi = mi + one_m_b1 * (gi - mi)               # lerp, as PyTorch computes it
        vi = b2 * v[i] + one_m_b2 * gi * gi
        mi = mi if abs(mi) >= tiny else zero         # flush would-be denormals (see above)
        vi = vi if vi >= tiny else zero
        m[i] = mi
        v[i] = vi
        if amsgrad:
            vi = max(vmax[i], vi)
            vmax[i] = vi
        p[i] = pi - step_size * mi / (np.sqrt(vi) * inv_bc2_sqrt + eps)


def adam_coefficients(dtype, *, lr: float, beta1: float, beta2: float, eps: float,
                      weight_decay: float, decoupled: bool, step: int) -> np.ndarray:
    """The step's scalars, packed once per step and group for `adam_step`."""
    bc1 = 1.0 - beta1 ** step
    bc2 = 1.0 - beta2 ** step
    decay = 1.0 - lr * weight_decay if decoupled else 1.0
    wd = 0.0 if decoupled else weight_decay
    tiny = float(np.finfo(dtype).tiny)
    return np.array([decay, wd, 1.0 - beta1, beta2, 1.0 - beta2, lr / bc1,
                     1.0 / math.sqrt(bc2), eps, tiny, 0.0], dtype=dtype)


def adam_step(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray,
              vmax: np.ndarray | None, coef: np.ndarray, amsgrad: bool,
              maximize: bool) -> None:
    """One Adam / AdamW step in place on C-contiguous arrays of one float dtype."""
    flat = (p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1))
    vm = vmax.reshape(-1) if vmax is not None else flat[3]
    _adam_kernel(*flat, vm, coef, amsgrad, maximize)
