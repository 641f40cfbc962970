"""Which implementation of a hot op runs: the one switch.

    public op (tinylatent/ops/conv.py, attention.py, coupling.py, contrastive.py)
        -> lookup(name, tensor)          here
            -> None                      run the reference (pure Tensor ops, the oracle)
            -> an entry function         a fast autograd Function (kernels/functions.py)
                                         on the Numba backend (NumPy arrays) or the CUDA
                                         backend (CuPy arrays)

The reference runs when
  * the environment variable TINYLATENT_KERNELS is "reference" (read on every call, so it
    can be flipped at run time), or inside `with kernels.use_reference():`;
  * no backend applies: Numba is not importable (CPU), CuPy is missing (GPU), or the
    arguments are outside what the kernel covers (float16, grouped convolution, a float
    mask that requires grad, attention batch axes that broadcast): the entry returns None.
Importing this module is cheap: Numba and CuPy are imported on the first fast call.
"""
from __future__ import annotations

import contextlib
import functools
import math
import os
import threading

import numpy as np

__all__ = ["lookup", "use_reference", "reference_forced", "backend_for", "ENV_VAR",
           "numba_available"]

ENV_VAR = "TINYLATENT_KERNELS"
_FAST_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class _Switch(threading.local):
    depth = 0


_switch = _Switch()


@contextlib.contextmanager
def use_reference():
    """Run every hot op through its reference implementation inside this block."""
    _switch.depth += 1
    try:
        yield
    finally:
        _switch.depth -= 1


def reference_forced() -> bool:
    if _switch.depth > 0:
        return True
    mode = os.environ.get(ENV_VAR, "auto").strip().lower()
    if mode in ("", "auto", "fast", "kernels"):
        return False
    if mode == "reference":
        return True
    raise ValueError(f"{ENV_VAR}={mode!r}: expected 'auto' (fast kernels where available) "
                     "or 'reference'")


@functools.lru_cache(maxsize=None)
def _numba_backend():
    try:
        from . import numba as backend
    except ImportError:  # Numba missing or broken: the reference still works
        return None
    return backend


def numba_available() -> bool:
    return _numba_backend() is not None


@functools.lru_cache(maxsize=None)
def _cuda_backend():
    try:
        from . import cuda as backend
    except ImportError:
        return None
    return backend if backend.available() else None


def backend_for(x):
    """The kernel backend for a tensor's arrays, or None."""
    data = x.data
    if type(data) is np.ndarray:
        return _numba_backend()
    if hasattr(data, "__cuda_array_interface__"):
        return _cuda_backend()
    return None


def lookup(name: str, x):
    """The fast entry for op `name` on x's device, or None for the reference."""
    if reference_forced():
        return None
    be = backend_for(x)
    if be is None:
        return None
    return functools.partial(_ENTRIES[name], be)


def _fast_dtype(*tensors) -> bool:
    return all(t is None or t.dtype in _FAST_DTYPES for t in tensors)


# ---------------------------------------------------------------------- entries
def _conv2d(be, x, weight, bias, stride, padding, dilation, groups):
    from tinylatent.ops import conv as C
    from .functions import Conv2dFn, conv_geometry
    if groups != 1 or not _fast_dtype(x, weight, bias):
        return None
    stride_, pads, dilation_ = C._conv2d_args(x, weight, bias, stride, padding, dilation,
                                              groups)
    kernel = weight.shape[2:]
    out_hw = C.conv2d_output_shape(x.shape[2], x.shape[3], kernel, stride_, pads, dilation_)
    geom = conv_geometry(kernel, stride_, pads, dilation_, out_hw)

    def reference(x_, w_, b_):
        return C.conv2d_reference(x_, w_, b_, stride, padding, dilation, groups)
    return Conv2dFn.apply(x, weight, bias, geom=geom, be=be, reference=reference)


def _conv_transpose2d(be, x, weight, bias, stride, padding, output_padding, dilation,
                      groups):
    from tinylatent.ops import conv as C
    from .functions import ConvTranspose2dFn, conv_geometry
    if groups != 1 or not _fast_dtype(x, weight, bias):
        return None
    stride_, pad_, outpad_, dilation_ = C._conv_transpose2d_args(
        x, weight, bias, stride, padding, output_padding, dilation, groups)
    kernel = weight.shape[2:]
    ho, wo = C.conv_transpose2d_output_shape(x.shape[2], x.shape[3], kernel, stride_, pad_,
                                             outpad_, dilation_)
    # The conv2d whose input is y (B, C_out, Ho, Wo) and whose output is x (B, C_in, H, W).
    geom = conv_geometry(kernel, stride_, ((pad_[0], pad_[0]), (pad_[1], pad_[1])),
                         dilation_, x.shape[2:])
    out_shape = (x.shape[0], weight.shape[1], ho, wo)

    def reference(x_, w_, b_):
        return C.conv_transpose2d_reference(x_, w_, b_, stride, padding, output_padding,
                                            dilation, groups)
    return ConvTranspose2dFn.apply(x, weight, bias, geom=geom, out_shape=out_shape, be=be,
                                   reference=reference)


def _attention_explicit(q, k, v, fmask, keep, drop, scale, causal):
    """The attention the fused kernel computes, given its masks as arrays, in Tensor ops
    (for double backward through AttentionFn). q, k, v: (N, T, D)."""
    from tinylatent.ops.arithmetic import where
    from tinylatent.tensor import Tensor
    xp = q.xp
    s = (q @ k.transpose(-1, -2)) * scale                             # (N, Tq, Tk)
    if fmask is not None:
        s = s + Tensor._make(fmask)
    tq, tk = s.shape[-2:]
    kept = xp.ones(s.shape, dtype=bool)
    if causal:
        kept = kept & xp.tril(xp.ones((tq, tk), dtype=bool))
    if keep is not None:
        kept = kept & keep.astype(bool)
    any_kept = kept.any(axis=-1, keepdims=True)
    s = where(Tensor._make(kept), s, -np.inf)
    s = where(Tensor._make(any_kept), s, 0.0)
    p = s.softmax(axis=-1) * Tensor._make(any_kept.astype(s.dtype))
    if drop is not None:
        p = p * Tensor._make(drop)
    return p @ v


def _attention(be, q, k, v, attn_mask, dropout_p, is_causal, scale, generator):
    from .functions import AttentionFn
    if not _fast_dtype(q, k, v):
        return None
    batch = q.shape[:-2]
    if k.shape[:-2] != batch or v.shape[:-2] != batch:
        return None
    if attn_mask is not None and attn_mask.dtype.kind == "f" and attn_mask.requires_grad:
        return None
    xp = be.xp
    tq, d = q.shape[-2:]
    tk, dv = v.shape[-2:]
    n = math.prod(batch) if batch else 1
    full = tuple(batch) + (tq, tk)
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    fmask = keep = drop = None
    if attn_mask is not None:
        m = attn_mask.data
        if attn_mask.dtype.kind == "b":
            keep = xp.ascontiguousarray(xp.broadcast_to(m, full)).view(xp.uint8)
            keep = keep.reshape(n, tq, tk)
        else:
            fmask = xp.ascontiguousarray(xp.broadcast_to(m.astype(q.dtype, copy=False),
                                                         full)).reshape(n, tq, tk)
    if dropout_p > 0.0:
        from tinylatent.random import dropout_mask
        drop = dropout_mask(full, dropout_p, dtype=q.dtype, device=q.device,
                            generator=generator).data.reshape(n, tq, tk)

    def reference(q_, k_, v_):
        return _attention_explicit(q_, k_, v_, fmask, keep, drop, scale, is_causal)
    out = AttentionFn.apply(q.reshape(n, tq, d), k.reshape(n, tk, d), v.reshape(n, tk, dv),
                            fmask=fmask, keep=keep, drop=drop, scale=scale,
                            causal=bool(is_causal), be=be, reference=reference)
    return out.reshape(tuple(batch) + (tq, dv))


def _affine_coupling(be, a, log_s, t, inverse):
    from tinylatent.ops import coupling as CP
    from .functions import AffineCouplingFn
    if not _fast_dtype(a, log_s, t):
        return None
    ref = CP.affine_coupling_inverse_reference if inverse else CP.affine_coupling_reference
    return AffineCouplingFn.apply(a, log_s, t, inverse=bool(inverse), be=be, reference=ref)


def _logsumexp(be, x, keepdims):
    from tinylatent.ops.contrastive import logsumexp_reference
    from .functions import LogsumexpFn
    if not _fast_dtype(x):
        return None
    return LogsumexpFn.apply(x, keepdims=keepdims, be=be, reference=logsumexp_reference)


def _nt_xent(be, z1, z2, tau, reduction):
    from tinylatent.ops.contrastive import nt_xent_reference
    from .functions import NTXentFn
    if not _fast_dtype(z1, z2):
        return None
    return NTXentFn.apply(z1, z2, tau=tau, reduction=reduction, be=be,
                          reference=nt_xent_reference)


def _info_nce(be, q, k, tau, reduction):
    from tinylatent.ops.contrastive import info_nce_reference
    from .functions import InfoNCEFn
    if not _fast_dtype(q, k):
        return None
    return InfoNCEFn.apply(q, k, tau=tau, reduction=reduction, be=be,
                           reference=info_nce_reference)


_ENTRIES = {
    "conv2d": _conv2d,
    "conv_transpose2d": _conv_transpose2d,
    "scaled_dot_product_attention": _attention,
    "affine_coupling": _affine_coupling,
    "logsumexp": _logsumexp,
    "nt_xent": _nt_xent,
    "info_nce": _info_nce,
}
