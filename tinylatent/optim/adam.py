"""Adam and AdamW (Kingma & Ba 2015, Alg. 1; Loshchilov & Hutter 2019), PyTorch semantics.

    g_t = grad + weight_decay * p                  (Adam's L2 form; AdamW instead does
                                                    p <- p * (1 - lr * weight_decay))
    m_t = beta1 * m + (1 - beta1) * g_t            first moment
    v_t = beta2 * v + (1 - beta2) * g_t^2          second moment (amsgrad: running max)
    p  <- p - lr / (1 - beta1^t) * m_t / (sqrt(v_t) / sqrt(1 - beta2^t) + eps)

Two implementations of the same step: `_adam_reference` (NumPy/CuPy array ops, readable, the
test oracle and the GPU path) and a fused Numba kernel (`_fused.py`, one pass per parameter)
used on the CPU when Numba is available. Tests check that both agree.
"""
from __future__ import annotations

import numpy as np

from ..autograd import no_grad
from .optimizer import Optimizer

__all__ = ["Adam", "AdamW"]

_FUSED = {}  # the lazily imported Numba module, or the reason it is unavailable


def _fused_module():
    """Import the Numba kernels on first use (keeps `import tinylatent` fast). None when
    Numba is not installed (tinylatent.kernels.dispatch warns once); a Numba that cannot
    write its cache caches in a temporary directory; any other error is raised."""
    if "module" not in _FUSED:
        from ..kernels.dispatch import load_numba_module
        _FUSED["module"] = load_numba_module(__package__ + "._fused")
        if _FUSED["module"] is None:
            _FUSED["reason"] = "Numba is not installed"
    return _FUSED["module"]


def _reference_forced() -> bool:
    """The project-wide switch for hot ops (TINYLATENT_KERNELS=reference or
    `kernels.use_reference()`) also selects Adam's reference path."""
    from ..kernels.dispatch import reference_forced
    return reference_forced()


def _can_fuse(p, g) -> bool:
    """The kernel needs host (numpy) arrays, C-contiguous, one float dtype."""
    return (type(p) is np.ndarray and type(g) is np.ndarray and p.dtype == g.dtype
            and p.dtype in (np.float32, np.float64) and p.flags.c_contiguous
            and g.flags.c_contiguous and p.shape == g.shape)


def _flush_denormals(xp, a) -> None:
    """Set |a| < smallest normal to 0 (CPU only; see _fused.py for why denormals hurt)."""
    if xp is np:
        tiny = np.finfo(a.dtype).tiny
        a[np.abs(a) < tiny] = 0


def _adam_reference(xp, p, g, m, v, vmax, *, lr, beta1, beta2, eps, weight_decay,
                    decoupled, step, amsgrad, maximize) -> None:
    """One Adam / AdamW step with plain array operations, in place on p, m, v (and vmax)."""
    if maximize:
        g = -g
    if weight_decay != 0:
        if decoupled:
            p *= 1 - lr * weight_decay
        else:
            g = g + weight_decay * p
    m += (1 - beta1) * (g - m)                     # lerp m -> g, as PyTorch computes it
    v *= beta2
    v += (1 - beta2) * g * g
    _flush_denormals(xp, m)
    _flush_denormals(xp, v)
    if amsgrad:
        xp.maximum(vmax, v, out=vmax)
        v = vmax
    bias_correction1 = 1 - beta1 ** step
    bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
    denom = xp.sqrt(v) / bias_correction2_sqrt + eps
    p -= (lr / bias_correction1) * m / denom


class Adam(Optimizer):
    """Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False,
    maximize=False, fused=None).

    `fused=None` uses the Numba kernel where it applies (CPU, contiguous float arrays; not
    with TINYLATENT_KERNELS=reference or inside `kernels.use_reference()`) and the array-op
    reference elsewhere (e.g. CuPy arrays); `fused=False` forces the reference;
    `fused=True` requires Numba.
    """

    _decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False,
                 maximize: bool = False, fused: bool | None = None):
        name = type(self).__name__
        if not lr >= 0.0:
            raise ValueError(f"{name}: invalid learning rate lr={lr}")
        if not eps >= 0.0:
            raise ValueError(f"{name}: invalid eps={eps}")
        if len(betas) != 2 or not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"{name}: invalid betas={betas}; each must be in [0, 1)")
        if not weight_decay >= 0.0:
            raise ValueError(f"{name}: invalid weight_decay={weight_decay}")
        if fused and _fused_module() is None:
            raise RuntimeError(f"{name}(fused=True) needs Numba: {_FUSED.get('reason')}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize)
        super().__init__(params, defaults)
        self.fused = fused

    def step(self, closure=None):
        """Update every parameter with a gradient; returns closure() if given."""
        loss = self._evaluate(closure)
        use_kernel = self.fused or (self.fused is None and not _reference_forced())
        fused = _fused_module() if use_kernel else None
        with no_grad():
            for group in self.param_groups:
                beta1, beta2 = group["betas"]
                hyper = dict(lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                             weight_decay=group["weight_decay"], decoupled=self._decoupled,
                             amsgrad=group["amsgrad"], maximize=group["maximize"])
                hyper_coef = {k: hyper[k] for k in ("lr", "beta1", "beta2", "eps",
                                                    "weight_decay", "decoupled")}
                coef_key, coef = None, None
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    g = p.grad.array if hasattr(p.grad, "array") else p.grad
                    state = self.state.get(p)
                    if state is None:
                        xp = p.xp
                        # zeros, not empty: buffers stay allocated for the whole run
                        state = {"step": 0, "exp_avg": xp.zeros_like(p.array),
                                 "exp_avg_sq": xp.zeros_like(p.array)}
                        self.state[p] = state
                    state["step"] += 1
                    vmax = None
                    if group["amsgrad"]:
                        vmax = state.get("max_exp_avg_sq")
                        if vmax is None:
                            vmax = state["max_exp_avg_sq"] = p.xp.zeros_like(p.array)
                    args = (p.array, g, state["exp_avg"], state["exp_avg_sq"], vmax)
                    if fused is not None and _can_fuse(p.array, g):
                        key = (state["step"], p.dtype)
                        if key != coef_key:  # one packing per group and step, not per param
                            coef_key = key
                            coef = fused.adam_coefficients(p.dtype, step=state["step"],
                                                           **hyper_coef)
                        fused.adam_step(*args, coef, hyper["amsgrad"], hyper["maximize"])
                    else:
                        _adam_reference(p.xp, *args, step=state["step"], **hyper)
                    p._version += 1
        return loss


class AdamW(Adam):
    """AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, ...):
    Adam with decoupled weight decay, p <- p * (1 - lr * weight_decay) before the Adam step."""

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False,
                 maximize: bool = False, fused: bool | None = None):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize, fused=fused)
