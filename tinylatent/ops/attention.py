"""Scaled dot-product attention (Vaswani et al. 2017, eq. 1), PyTorch's signature.

    A = softmax(q k^T * scale + mask),   out = dropout(A) v,   scale = 1 / sqrt(D)

q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv) -> (..., Tq, Dv). Masks follow PyTorch: a
boolean `attn_mask` keeps the positions where it is True; a float mask is added to the
scores. `is_causal=True` lets query i see keys j <= i (combined with `attn_mask` if both are
given). A query row with every key masked out gets zero output and zero gradient (rather
than NaN), so padded positions in a batch do no harm.

`scaled_dot_product_attention_reference` is the test oracle in plain Tensor ops (all orders
of gradients); the public function dispatches to a fused kernel when one applies.
"""
from __future__ import annotations

import math

import numpy as np

from ..tensor import Tensor
from .arithmetic import where
from .fast import try_fast
from .reduce import softmax

__all__ = ["scaled_dot_product_attention", "scaled_dot_product_attention_reference",
           "attention_keep_mask"]


def _check(q, k, v, attn_mask, dropout_p, scale):
    op = "scaled_dot_product_attention"
    for name, t in (("query", q), ("key", k), ("value", v)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
        if t.ndim < 2:
            raise ValueError(f"{op}: {name} must be at least 2-D (..., T, D), got {t.shape}")
        if t.dtype.kind != "f":
            raise TypeError(f"{op}: {name} must be floating, got dtype {t.dtype}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"{op}: query {q.shape} and key {k.shape} must share the last "
                         "(feature) axis")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"{op}: key {k.shape} and value {v.shape} must have the same "
                         "number of positions (axis -2)")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"{op}: query, key, value dtypes differ ({q.dtype}, {k.dtype}, "
                        f"{v.dtype})")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"{op}: dropout_p must be in [0, 1), got {dropout_p}")
    if scale is not None and not isinstance(scale, (int, float)):
        raise TypeError(f"{op}: scale must be a number or None, got {type(scale).__name__}")
    tq, tk = q.shape[-2], k.shape[-2]
    if attn_mask is not None:
        m = attn_mask
        if not isinstance(m, Tensor):
            raise TypeError(f"{op}: attn_mask must be a Tensor or None, got "
                            f"{type(m).__name__}")
        if m.dtype.kind not in "bf":
            raise TypeError(f"{op}: attn_mask must be bool (True = keep) or float "
                            f"(added to the scores), got dtype {m.dtype}")
        try:
            np.broadcast_shapes(tuple(m.shape), tuple(q.shape[:-2]) + (tq, tk))
        except ValueError:
            raise ValueError(f"{op}: attn_mask of shape {m.shape} does not broadcast to the "
                             f"scores' shape {tuple(q.shape[:-2]) + (tq, tk)}") from None


def attention_keep_mask(q: Tensor, k: Tensor, attn_mask, is_causal: bool):
    """The boolean keep-mask (broadcastable to the scores) from `is_causal` and a bool
    `attn_mask`, as a raw array, or None when everything is kept."""
    xp = q.xp
    tq, tk = q.shape[-2], k.shape[-2]
    keep = None
    if is_causal:
        keep = xp.tril(xp.ones((tq, tk), dtype=bool))
    if attn_mask is not None and attn_mask.dtype.kind == "b":
        keep = attn_mask.data if keep is None else xp.logical_and(keep, attn_mask.data)
    return keep


def scaled_dot_product_attention_reference(q: Tensor, k: Tensor, v: Tensor, attn_mask=None,
                                           dropout_p: float = 0.0, is_causal: bool = False,
                                           scale: float | None = None,
                                           generator=None) -> Tensor:
    """softmax(q k^T * scale + mask) v in Tensor ops; dropout drawn from `generator` by
    tl.random.dropout_mask on the attention weights (as PyTorch does)."""
    _check(q, k, v, attn_mask, dropout_p, scale)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    scores = (q @ k.transpose(-1, -2)) * scale                  # (..., Tq, Tk)
    if attn_mask is not None and attn_mask.dtype.kind == "f":
        scores = scores + attn_mask.to(scores.dtype)
    keep = attention_keep_mask(q, k, attn_mask, is_causal)
    if keep is not None:
        xp = q.xp
        keep = xp.broadcast_to(keep, scores.shape)
        # Rows with no key left would be softmax over nothing: give them zero weights.
        any_kept = keep.any(axis=-1, keepdims=True)
        scores = where(Tensor._make(keep), scores, -np.inf)
        scores = where(Tensor._make(any_kept), scores, 0.0)
        attn = softmax(scores, axis=-1) * Tensor._make(any_kept.astype(scores.dtype))
    else:
        attn = softmax(scores, axis=-1)
    if dropout_p > 0.0:
        from ..random import dropout_mask
        attn = attn * dropout_mask(attn.shape, dropout_p, dtype=attn.dtype, device=attn.device,
                                   generator=generator)
    return attn @ v                                             # (..., Tq, Dv)


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, attn_mask=None,
                                 dropout_p: float = 0.0, is_causal: bool = False,
                                 scale: float | None = None, generator=None) -> Tensor:
    """softmax(q k^T / sqrt(D) + mask) v, PyTorch's F.scaled_dot_product_attention.

    q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv); bool attn_mask True = keep, float
    attn_mask added. Runs the fused kernel when one applies, else the reference.
    """
    _check(q, k, v, attn_mask, dropout_p, scale)
    out = try_fast("scaled_dot_product_attention", q, k, v, attn_mask, dropout_p, is_causal,
                   scale, generator)
    if out is not None:
        return out
    return scaled_dot_product_attention_reference(q, k, v, attn_mask, dropout_p, is_causal,
                                                  scale, generator)
