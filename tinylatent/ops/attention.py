"""Scaled dot-product attention (Vaswani et al. 2017, eq. 1), PyTorch's signature.

    A = softmax(q k^T * scale + mask),   out = dropout(A) v,   scale = 1 / sqrt(D)

q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv) -> (..., Tq, Dv). Masks follow PyTorch: a
boolean `attn_mask` keeps the positions where it is True; a float mask is added to the
scores. `is_causal=True` lets query i see keys j <= i (combined with `attn_mask` if both are
given). A query row with every key masked out gets zero output and zero gradient (rather
than NaN), so padded positions in a batch do no harm.

`scaled_dot_product_attention_reference` is the test oracle in plain Tensor ops (all orders
of gradients), built on `_attend`; `AttentionFn` is the fused op (a kernel backend's masked
softmax between two batched GEMMs), whose double backward differentiates that same `_attend`
on the same masks; `FlashAttentionFn` computes the same without storing the scores (online
softmax, Dao et al. 2022) when there is no mask but the causal one and no dropout: always on
the GPU (feature sizes up to 128), on the CPU once the scores would pass FLASH_CPU_MIN_SCORES
entries. The public function runs the first of them that applies.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd import Function, is_grad_enabled
from ..tensor import Tensor, is_float_dtype
from .arithmetic import where
from .fast import fast_backend, reference_vjp
from .reduce import softmax

__all__ = ["scaled_dot_product_attention", "scaled_dot_product_attention_reference",
           "attention_keep_mask", "AttentionFn", "FlashAttentionFn"]


def _check(q, k, v, attn_mask, dropout_p, scale):
    op = "scaled_dot_product_attention"
    for name, t in (("query", q), ("key", k), ("value", v)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
        if t.ndim < 2:
            raise ValueError(f"{op}: {name} must be at least 2-D (..., T, D), got {t.shape}")
        if not is_float_dtype(t.dtype):
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
        if m.dtype.kind != "b" and not is_float_dtype(m.dtype):
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
        keep = attn_mask.array if keep is None else xp.logical_and(keep, attn_mask.array)
    return keep


def _attend(q: Tensor, k: Tensor, v: Tensor, fmask, keep, drop, scale: float) -> Tensor:
    """The attention both paths compute, in Tensor ops: softmax(q k^T * scale + fmask) over
    the keys where `keep` (a bool array broadcastable to the scores, or None) is True, rows
    with no key kept set to zero, times `drop` (the dropout mask, or None), then @ v.
    fmask and drop are Tensors or None."""
    scores = (q @ k.transpose(-1, -2)) * scale                  # (..., Tq, Tk)
    if fmask is not None:
        scores = scores + fmask
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
    if drop is not None:
        attn = attn * drop
    return attn @ v                                             # (..., Tq, Dv)


def scaled_dot_product_attention_reference(q: Tensor, k: Tensor, v: Tensor, attn_mask=None,
                                           dropout_p: float = 0.0, is_causal: bool = False,
                                           scale: float | None = None,
                                           generator=None) -> Tensor:
    """softmax(q k^T * scale + mask) v in Tensor ops; dropout drawn from `generator` by
    tl.random.dropout_mask on the attention weights (as PyTorch does)."""
    _check(q, k, v, attn_mask, dropout_p, scale)
    return _reference(q, k, v, attn_mask, dropout_p, is_causal, _scale(q, scale), generator)


def _scale(q: Tensor, scale) -> float:
    return 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)


def _reference(q, k, v, attn_mask, dropout_p, is_causal, scale, generator):
    fmask = None
    if attn_mask is not None and is_float_dtype(attn_mask.dtype):
        fmask = attn_mask.to(q.dtype)
    drop = None
    if dropout_p > 0.0:
        from ..random import dropout_mask
        shape = np.broadcast_shapes(q.shape[:-2], k.shape[:-2]) + (q.shape[-2], k.shape[-2])
        drop = dropout_mask(shape, dropout_p, dtype=q.dtype, device=q.device,
                            generator=generator)
    return _attend(q, k, v, fmask, attention_keep_mask(q, k, attn_mask, is_causal), drop,
                   scale)


# ---------------------------------------------------------------------- fast Function
class AttentionFn(Function):
    """out = (P * M) v with P = masked softmax(scale q k^T + mask), M the dropout mask;
    dv = (P M)^T dout,  dP = (dout v^T) M,  dS = scale P (dP - rowsum(dP P)),
    dq = dS k,  dk = dS^T q.  q, k, v arrive flattened to (N, T, D)."""

    @staticmethod
    def forward(ctx, q, k, v, *, fmask, keep, drop, scale, causal, be, reference):
        s = be.matmul(q, k.transpose(0, 2, 1))                       # (N, Tq, Tk)
        if fmask is not None:
            s *= scale
            s += fmask
            kscale = 1.0
        else:
            kscale = scale
        p = be.masked_softmax(s, kscale, keep, causal)               # in place: s is P
        pd = p * drop if drop is not None else p
        out = be.matmul(pd, v)                                       # (N, Tq, Dv)
        ctx.be, ctx.reference, ctx.scale = be, reference, scale
        ctx.p, ctx.drop = p, drop
        ctx.save_for_backward(q, k, v)
        return out

    @staticmethod
    def backward(ctx, grad):
        q, k, v = ctx.saved_tensors
        if is_grad_enabled():
            return reference_vjp(ctx.reference, (q, k, v), grad)
        be, need = ctx.be, ctx.needs_input_grad
        g = grad.array
        p, drop = ctx.p, ctx.drop
        gq = gk = gv = None
        if need[2]:
            pd = p * drop if drop is not None else p
            gv = Tensor._make(be.matmul(pd.transpose(0, 2, 1), g))             # (N, Tk, Dv)
        if need[0] or need[1]:
            dp = be.matmul(g, v.array.transpose(0, 2, 1))             # (N, Tq, Tk)
            if drop is not None:
                dp *= drop
            ds = be.softmax_backward(p, dp, ctx.scale)               # grad of q k^T
            if need[0]:
                gq = Tensor._make(be.matmul(ds, k.array))                       # (N, Tq, D)
            if need[1]:
                gk = Tensor._make(be.matmul(ds.transpose(0, 2, 1), q.array))    # (N, Tk, D)
        return gq, gk, gv


class FlashAttentionFn(Function):
    """out = softmax(scale q k^T [causal]) v with O(T) memory: the forward keeps only out and
    the row log-sum-exp lse; the backward recomputes P = exp(scale q k^T - lse) tile by tile
    (Dao 2023, Alg. 2): D = rowsum(dout * out), dS = P (dout v^T - D), dq = scale dS k,
    dk = scale dS^T q, dv = P^T dout. q, k, v arrive flattened to (N, T, D)."""

    @staticmethod
    def forward(ctx, q, k, v, *, scale, causal, be, reference):
        out, lse = be.flash_attention(q, k, v, scale, causal)
        ctx.be, ctx.reference, ctx.scale, ctx.causal = be, reference, scale, causal
        ctx.out, ctx.lse = out, lse
        ctx.save_for_backward(q, k, v)
        return out

    @staticmethod
    def backward(ctx, grad):
        q, k, v = ctx.saved_tensors
        if is_grad_enabled():
            return reference_vjp(ctx.reference, (q, k, v), grad)
        gq, gk, gv = ctx.be.flash_attention_backward(q.array, k.array, v.array, ctx.out,
                                                     ctx.lse, grad.array, ctx.scale,
                                                     ctx.causal)
        need = ctx.needs_input_grad
        return tuple(Tensor._make(g) if n else None for g, n in zip((gq, gk, gv), need))


# Score entries (N Tq Tk) from which the CPU takes the flash path: 2^26 float32 scores are
# 256 MB (and as much again for their gradient); below that BLAS on the whole score matrix
# is faster than the blocked loop.
FLASH_CPU_MIN_SCORES = 2 ** 26


def _flash_applies(be, n: int, tq: int, tk: int, d: int, dv: int, attn_mask,
                   dropout_p: float) -> bool:
    if attn_mask is not None or dropout_p > 0.0:
        return False
    if be.name == "cuda":   # flash_attention.cu keeps rows of q, dout, out in registers
        return max(d, dv) <= be.FLASH_MAX_D
    return n * tq * tk >= FLASH_CPU_MIN_SCORES


def _fast_applies(be, q: Tensor, k: Tensor, v: Tensor, attn_mask) -> bool:
    """The fused kernel takes q, k, v with the same batch axes (no broadcasting) and masks
    that are constants (a float mask requiring grad needs the reference)."""
    batch = q.shape[:-2]
    return (be is not None and k.shape[:-2] == batch and v.shape[:-2] == batch
            and not (attn_mask is not None and is_float_dtype(attn_mask.dtype)
                     and attn_mask.requires_grad))


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, attn_mask=None,
                                 dropout_p: float = 0.0, is_causal: bool = False,
                                 scale: float | None = None, generator=None) -> Tensor:
    """softmax(q k^T / sqrt(D) + mask) v, PyTorch's F.scaled_dot_product_attention.

    q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv); bool attn_mask True = keep, float
    attn_mask added. Runs AttentionFn when it applies, else the reference.
    """
    _check(q, k, v, attn_mask, dropout_p, scale)
    scale = _scale(q, scale)
    be = fast_backend(q, k, v, op="attention")
    if not _fast_applies(be, q, k, v, attn_mask):
        return _reference(q, k, v, attn_mask, dropout_p, is_causal, scale, generator)
    xp = be.xp
    batch = q.shape[:-2]
    tq, d = q.shape[-2:]
    tk, dv = v.shape[-2:]
    n = math.prod(batch) if batch else 1
    full = tuple(batch) + (tq, tk)
    if _flash_applies(be, n, tq, tk, d, dv, attn_mask, dropout_p):
        def flash_reference(q_, k_, v_):  # _attend with the causal mask, for double backward
            kept = attention_keep_mask(q, k, None, is_causal)
            return _attend(q_, k_, v_, None, kept, None, scale)
        out = FlashAttentionFn.apply(q.reshape(n, tq, d), k.reshape(n, tk, d),
                                     v.reshape(n, tk, dv), scale=scale, causal=bool(is_causal),
                                     be=be, reference=flash_reference)
        return out.reshape(tuple(batch) + (tq, dv))              # (..., Tq, Dv)
    fmask = keep = drop = None
    if attn_mask is not None:
        m = attn_mask.array
        if attn_mask.dtype.kind == "b":
            keep = xp.ascontiguousarray(xp.broadcast_to(m, full)).view(xp.uint8)
            keep = keep.reshape(n, tq, tk)                       # (N, Tq, Tk)
        else:
            fmask = xp.ascontiguousarray(xp.broadcast_to(m.astype(q.dtype, copy=False),
                                                         full)).reshape(n, tq, tk)
    if dropout_p > 0.0:
        from ..random import dropout_mask
        drop = dropout_mask(full, dropout_p, dtype=q.dtype, device=q.device,
                            generator=generator).array.reshape(n, tq, tk)

    def reference(q_, k_, v_):  # _attend on the same masks, for double backward
        kept = attention_keep_mask(q, k, attn_mask, is_causal)
        if kept is not None:
            kept = xp.broadcast_to(kept, full).reshape(n, tq, tk)
        return _attend(q_, k_, v_, None if fmask is None else Tensor._make(fmask), kept,
                       None if drop is None else Tensor._make(drop), scale)
    out = AttentionFn.apply(q.reshape(n, tq, d), k.reshape(n, tk, d), v.reshape(n, tk, dv),
                            fmask=fmask, keep=keep, drop=drop, scale=scale,
                            causal=bool(is_causal), be=be, reference=reference)
    return out.reshape(tuple(batch) + (tq, dv))                  # (..., Tq, Dv)
