"""Gradient clipping and flat parameter vectors; weight and spectral normalization (the
hook form here, the parametrization form in nn.utils.parametrizations, built on
nn.utils.parametrize)."""
from __future__ import annotations

import math
from typing import Iterable

from ... import autograd, ops
from ...tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector",
           "vector_to_parameters", "weight_norm", "remove_weight_norm", "spectral_norm",
           "remove_spectral_norm", "parametrize", "parametrizations", "rnn"]


def _as_list(parameters) -> list:
    return [parameters] if isinstance(parameters, Tensor) else list(parameters)


def clip_grad_norm_(parameters: Iterable[Tensor] | Tensor, max_norm: float,
                    norm_type: float = 2.0, error_if_nonfinite: bool = False) -> Tensor:
    """Scale all gradients in place so their joint norm is at most max_norm
    (Pascanu et al. 2013). Returns the total norm before clipping (a 0-d tensor).

    total = ||(||g_1||, ..., ||g_n||)||_p;  g <- g * min(1, max_norm / (total + 1e-6))
    """
    params = [p for p in _as_list(parameters) if p.grad is not None]
    if not params:
        return Tensor(0.0)
    xp = params[0].xp
    with autograd.no_grad():
        grads = [p.grad.array for p in params]
        if norm_type == math.inf:
            total = max((float(xp.abs(g).max()) for g in grads if g.size), default=0.0)
        else:
            total = sum(float((xp.abs(g.astype(xp.float64)) ** norm_type).sum())
                        for g in grads) ** (1.0 / norm_type)
        total = float(total)
        if error_if_nonfinite and not math.isfinite(total):
            raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the "
                               f"gradients is {total}; set error_if_nonfinite=False to skip")
        coef = max_norm / (total + 1e-6)
        if coef < 1.0:
            for p in params:
                if p.grad._ctx is not None or p.grad.requires_grad:
                    p.grad = p.grad.detach()
                p.grad.array *= p.grad.dtype.type(coef)
    return Tensor(total, dtype=params[0].grad.dtype)


def clip_grad_value_(parameters: Iterable[Tensor] | Tensor, clip_value: float) -> None:
    """Clamp every gradient entry to [-clip_value, clip_value] in place."""
    for p in _as_list(parameters):
        if p.grad is not None:
            p.grad.xp.clip(p.grad.array, -clip_value, clip_value, out=p.grad.array)


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """All parameters flattened and concatenated into one vector (differentiable)."""
    params = _as_list(parameters)
    if not params:
        raise ValueError("parameters_to_vector: no parameters given")
    return ops.cat([p.reshape(-1) for p in params], axis=0)


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Copy consecutive slices of `vec` into the parameters (in place, no graph)."""
    params = _as_list(parameters)
    if vec.ndim != 1:
        raise ValueError(f"vector_to_parameters: expected a 1-D vector, got shape "
                         f"{tuple(vec.shape)}")
    n = sum(p.numel() for p in params)
    if vec.numel() != n:
        raise ValueError(f"vector_to_parameters: vector has {vec.numel()} entries, the "
                         f"parameters {n}")
    offset = 0
    with autograd.no_grad():
        for p in params:
            p.copy_(vec.array[offset:offset + p.numel()].reshape(p.shape))
            offset += p.numel()


from . import parametrizations, parametrize, rnn  # noqa: E402
from .weight_norm import (remove_spectral_norm, remove_weight_norm, spectral_norm,  # noqa: E402
                          weight_norm)
