"""The affine coupling layer of RealNVP (Dinh et al. 2017, eq. 7-8) and Glow (Kingma &
Dhariwal 2018, Table 1), the elementwise part after the conditioner network:

    forward:   y_a = x_a * exp(log_s) + t,        logabsdet = sum(log_s)   (per sample)
    inverse:   x_a = (y_a - t) * exp(-log_s),     logabsdet = -sum(log_s)

(y_b = x_b passes through, and log_s, t = NN(x_b) are computed by the caller.) The
Jacobian of y_a w.r.t. x_a is diag(exp(log_s)), so log|det J| is the sum of log_s over
every axis but the batch axis (Dinh et al. 2017, eq. 6).

`*_reference` are the Tensor-op oracles; `AffineCouplingFn` is the fused op (one pass of a
kernel backend: y and logabsdet; one pass back for the three gradients); the public
functions run it when a backend applies (float32/64, the reference not forced).
"""
from __future__ import annotations

import math

from ..autograd import Function, is_grad_enabled
from ..tensor import Tensor, is_float_dtype
from .fast import fast_backend, reference_vjp

__all__ = ["affine_coupling", "affine_coupling_inverse", "affine_coupling_reference",
           "affine_coupling_inverse_reference", "AffineCouplingFn"]


def _check(op: str, a: Tensor, log_s: Tensor, t: Tensor, a_name: str) -> None:
    for name, v in ((a_name, a), ("log_s", log_s), ("t", t)):
        if not isinstance(v, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(v).__name__}")
        if not is_float_dtype(v.dtype):
            raise TypeError(f"{op}: {name} must be floating, got dtype {v.dtype}")
    if a.ndim < 1:
        raise ValueError(f"{op}: {a_name} needs a batch axis, got shape {a.shape}")
    if log_s.shape != a.shape or t.shape != a.shape:
        raise ValueError(f"{op}: {a_name} {a.shape}, log_s {log_s.shape} and t {t.shape} "
                         "must have the same shape")
    if not (a.dtype == log_s.dtype == t.dtype):
        raise TypeError(f"{op}: dtypes differ ({a_name} {a.dtype}, log_s {log_s.dtype}, "
                        f"t {t.dtype})")


def _per_sample_sum(log_s: Tensor) -> Tensor:
    # (B, K) with K spelled out, not -1: B may be 0 (an empty batch)
    return log_s.reshape(log_s.shape[0], math.prod(log_s.shape[1:])).sum(axis=1)   # (B,)


def affine_coupling_reference(x_a: Tensor, log_s: Tensor, t: Tensor) -> tuple:
    """(x_a * exp(log_s) + t, sum(log_s) per sample) in Tensor ops."""
    _check("affine_coupling", x_a, log_s, t, "x_a")
    return _forward(x_a, log_s, t)


def affine_coupling_inverse_reference(y_a: Tensor, log_s: Tensor, t: Tensor) -> tuple:
    """((y_a - t) * exp(-log_s), -sum(log_s) per sample) in Tensor ops."""
    _check("affine_coupling_inverse", y_a, log_s, t, "y_a")
    return _inverse(y_a, log_s, t)


def _forward(x_a, log_s, t):
    return x_a * log_s.exp() + t, _per_sample_sum(log_s)


def _inverse(y_a, log_s, t):
    return (y_a - t) * (-log_s).exp(), -_per_sample_sum(log_s)


# ---------------------------------------------------------------------- fast Function
class AffineCouplingFn(Function):
    """(y, logabsdet) with y = x e^{log_s} + t (inverse: x = (y - t) e^{-log_s}) and
    logabsdet_b = +-sum_k log_s[b, k], one fused pass; backward one fused pass for all
    three gradients of y, from the output (no copy of the input is kept), plus the
    logabsdet term d/dlog_s = +-g_ld broadcast over k."""

    @staticmethod
    def forward(ctx, a, log_s, t, *, inverse, be, reference):
        out, ld = be.coupling_forward(a, log_s, t, inverse)
        ctx.be, ctx.reference, ctx.inverse = be, reference, inverse
        ctx.save_for_backward(a, log_s, t, out)
        return out, ld

    @staticmethod
    def backward(ctx, grad, grad_ld):
        a, log_s, t, out = ctx.saved_tensors
        if is_grad_enabled():
            return reference_vjp(ctx.reference, (a, log_s, t), grad, grad_ld)
        g = grad.array if grad is not None else ctx.be.xp.zeros_like(out.array)
        g_in, g_ls, g_t = ctx.be.coupling_backward(g, out.array, log_s.array, t.array,
                                                   ctx.inverse)
        if grad_ld is not None:
            gld = grad_ld.array if not ctx.inverse else -grad_ld.array
            g_ls += gld.reshape((gld.shape[0],) + (1,) * (log_s.ndim - 1))  # (B, 1, ...)
        return Tensor._make(g_in), Tensor._make(g_ls), Tensor._make(g_t)


def _coupling(a: Tensor, log_s: Tensor, t: Tensor, inverse: bool) -> tuple:
    be = fast_backend(a, log_s, t, op="coupling")
    reference = _inverse if inverse else _forward
    if be is None:
        return reference(a, log_s, t)
    return AffineCouplingFn.apply(a, log_s, t, inverse=inverse, be=be, reference=reference)


def affine_coupling(x_a: Tensor, log_s: Tensor, t: Tensor) -> tuple:
    """y_a = x_a * exp(log_s) + t and logabsdet = sum of log_s over all but axis 0.

    x_a, log_s, t: the same shape (B, ...). Returns (y_a, logabsdet (B,)).
    """
    _check("affine_coupling", x_a, log_s, t, "x_a")
    return _coupling(x_a, log_s, t, inverse=False)


def affine_coupling_inverse(y_a: Tensor, log_s: Tensor, t: Tensor) -> tuple:
    """x_a = (y_a - t) * exp(-log_s) and logabsdet = -sum(log_s) per sample."""
    _check("affine_coupling_inverse", y_a, log_s, t, "y_a")
    return _coupling(y_a, log_s, t, inverse=True)
