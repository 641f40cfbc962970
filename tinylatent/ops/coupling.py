"""The affine coupling layer of RealNVP (Dinh et al. 2017, eq. 7-8) and Glow (Kingma &
Dhariwal 2018, Table 1), the elementwise part after the conditioner network:

    forward:   y_a = x_a * exp(log_s) + t,        logabsdet = sum(log_s)   (per sample)
    inverse:   x_a = (y_a - t) * exp(-log_s),     logabsdet = -sum(log_s)

(y_b = x_b passes through, and log_s, t = NN(x_b) are computed by the caller.) The
Jacobian of y_a w.r.t. x_a is diag(exp(log_s)), so log|det J| is the sum of log_s over
every axis but the batch axis (seed 001, normalizing flows).

`*_reference` are the Tensor-op oracles; the public functions dispatch to a fused kernel
when one applies (one pass: y, logabsdet; and one pass back for the three gradients).
"""
from __future__ import annotations

from ..tensor import Tensor
from .fast import try_fast

__all__ = ["affine_coupling", "affine_coupling_inverse", "affine_coupling_reference",
           "affine_coupling_inverse_reference"]


def _check(op: str, a: Tensor, log_s: Tensor, t: Tensor, a_name: str) -> None:
    for name, v in ((a_name, a), ("log_s", log_s), ("t", t)):
        if not isinstance(v, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(v).__name__}")
        if v.dtype.kind != "f":
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
    return log_s.reshape(log_s.shape[0], -1).sum(axis=1)      # (B,)


def affine_coupling_reference(x_a: Tensor, log_s: Tensor, t: Tensor) -> tuple:
    """(x_a * exp(log_s) + t, sum(log_s) per sample) in Tensor ops."""
    _check("affine_coupling", x_a, log_s, t, "x_a")
    return x_a * log_s.exp() + t, _per_sample_sum(log_s)


def affine_coupling_inverse_reference(y_a: Tensor, log_s: Tensor, t: Tensor) -> tuple:
    """((y_a - t) * exp(-log_s), -sum(log_s) per sample) in Tensor ops."""
    _check("affine_coupling_inverse", y_a, log_s, t, "y_a")
    return (y_a - t) * (-log_s).exp(), -_per_sample_sum(log_s)


def affine_coupling(x_a: Tensor, log_s: Tensor, t: Tensor) -> tuple:
    """y_a = x_a * exp(log_s) + t and logabsdet = sum of log_s over all but axis 0.

    x_a, log_s, t: the same shape (B, ...). Returns (y_a, logabsdet (B,)).
    """
    _check("affine_coupling", x_a, log_s, t, "x_a")
    out = try_fast("affine_coupling", x_a, log_s, t, False)
    if out is not None:
        return out
    return affine_coupling_reference(x_a, log_s, t)


def affine_coupling_inverse(y_a: Tensor, log_s: Tensor, t: Tensor) -> tuple:
    """x_a = (y_a - t) * exp(-log_s) and logabsdet = -sum(log_s) per sample."""
    _check("affine_coupling_inverse", y_a, log_s, t, "y_a")
    out = try_fast("affine_coupling", y_a, log_s, t, True)
    if out is not None:
        return out
    return affine_coupling_inverse_reference(y_a, log_s, t)
