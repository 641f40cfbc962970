"""Pooling and upsampling, as ops (the layers are in tinylatent/nn/pooling.py).

A pooling window at output (i, j) covers x_pad[i*s + a*d, j*s + b*d] for kernel offsets
(a, b). For each offset, those entries over all (i, j) form one strided *view* of the padded
input, so a pool is kh*kw array views combined elementwise -- no copies, no im2col:

    avg pool:  y = sum_k w_k * x_pad[view_k]           (w_k = 1 / window size)
    max pool:  y = max_k x_pad[view_k];  dy/dx_pad[view_k] = w_k = [x_pad[view_k] == y] / ties

Both gradients are the same linear map: scatter-add grad * w_k back into each view
(`_WindowScatter`); its adjoint is the weighted gather (`_WindowGather`). Each is the
other's backward, so every order of derivative exists (the max-pool weights are constant:
its second derivative is zero almost everywhere). Tied maxima share the gradient equally,
as tl.max does (PyTorch gives it to one of them; the sums agree).
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..tensor import Tensor
from .shape import pad, stack

__all__ = ["max_pool2d", "avg_pool2d", "max_pool1d", "avg_pool1d", "adaptive_avg_pool2d",
           "interpolate"]


def _pair(v, name: str, op: str) -> tuple:
    t = (v, v) if isinstance(v, int) else tuple(v)
    if len(t) != 2 or not all(isinstance(i, (int, np.integer)) for i in t):
        raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {v!r}")
    return tuple(int(i) for i in t)


class _WindowGather(Function):
    """y = sum_k w_k * x[view_k];  dL/dx = sum_k (dL/dy * w_k) added into view_k"""

    @staticmethod
    def forward(ctx, x, *, views, weights):
        ctx.views, ctx.weights, ctx.shape = views, weights, x.shape
        out = x[views[0]] * weights[0]
        for v, w in zip(views[1:], weights[1:]):
            out += x[v] * w
        return out

    @staticmethod
    def backward(ctx, grad):
        return _WindowScatter.apply(grad, views=ctx.views, weights=ctx.weights, shape=ctx.shape)


class _WindowScatter(Function):
    """x = zeros(shape) with g * w_k added into each view_k;  dL/dg = sum_k w_k dL/dx[view_k]"""

    @staticmethod
    def forward(ctx, g, *, views, weights, shape):
        ctx.views, ctx.weights = views, weights
        out = ctx.xp.zeros(shape, dtype=g.dtype)
        for v, w in zip(views, weights):
            out[v] += g * w
        return out

    @staticmethod
    def backward(ctx, grad):
        return _WindowGather.apply(grad, views=ctx.views, weights=ctx.weights)


class _MaxWindows(Function):
    """y = max_k x[view_k];  dL/dx = dL/dy scattered to the maxima, split evenly over ties"""

    @staticmethod
    def forward(ctx, x, *, views):
        xp = ctx.xp
        y = x[views[0]].copy()
        for v in views[1:]:
            xp.maximum(y, x[v], out=y)
        hits = [x[v] == y for v in views]
        count = hits[0].astype(x.dtype)
        for h in hits[1:]:
            count += h
        inv = 1.0 / count
        ctx.views, ctx.shape = views, x.shape
        ctx.weights = [h * inv for h in hits]
        return y

    @staticmethod
    def backward(ctx, grad):
        return _WindowScatter.apply(grad, views=ctx.views, weights=ctx.weights, shape=ctx.shape)


def _geometry(x: Tensor, kernel_size, stride, padding, dilation, op: str):
    """Check arguments; return (x as 4-D, unbatched, views of the padded input, padding,
    kernel, output size)."""
    if x.ndim not in (3, 4):
        raise ValueError(f"{op}: expected a (B, C, H, W) or (C, H, W) input, got shape "
                         f"{tuple(x.shape)}")
    unbatched = x.ndim == 3
    if unbatched:
        x = x.unsqueeze(0)
    kh, kw = _pair(kernel_size, "kernel_size", op)
    sh, sw = _pair(kernel_size if stride is None else stride, "stride", op)
    ph, pw = _pair(padding, "padding", op)
    dh, dw = _pair(dilation, "dilation", op)
    if min(kh, kw, sh, sw, dh, dw) < 1 or min(ph, pw) < 0:
        raise ValueError(f"{op}: kernel_size, stride and dilation must be >= 1 and padding "
                         f">= 0, got kernel_size={(kh, kw)}, stride={(sh, sw)}, "
                         f"padding={(ph, pw)}, dilation={(dh, dw)}")
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(f"{op}: padding {(ph, pw)} must be at most half the kernel size "
                         f"{(kh, kw)}")
    h, w = x.shape[2], x.shape[3]
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if ho < 1 or wo < 1:
        raise ValueError(f"{op}: input of shape {tuple(x.shape)} is too small for "
                         f"kernel_size={(kh, kw)}, dilation={(dh, dw)}, padding={(ph, pw)}")
    views = tuple((Ellipsis, slice(a * dh, a * dh + sh * (ho - 1) + 1, sh),
                   slice(b * dw, b * dw + sw * (wo - 1) + 1, sw))
                  for a in range(kh) for b in range(kw))
    return x, unbatched, views, (ph, pw), (kh, kw)


def _pad_hw(x: Tensor, ph: int, pw: int, value: float) -> Tensor:
    if not (ph or pw):
        return x
    return pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), value=value)


def max_pool2d(x: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False) -> Tensor:
    """y[b, c, i, j] = max of x over the window at (i*stride - padding) (padding is -inf)."""
    if ceil_mode:
        raise NotImplementedError("max_pool2d: ceil_mode=True is not supported")
    x, unbatched, views, (ph, pw), _ = _geometry(x, kernel_size, stride, padding, dilation,
                                                 "max_pool2d")
    y = _MaxWindows.apply(_pad_hw(x, ph, pw, -np.inf), views=views)      # (B, C, Ho, Wo)
    return y.squeeze(0) if unbatched else y


def avg_pool2d(x: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """Mean over each window; zero padding counts in the divisor unless
    count_include_pad=False (then each window divides by its real elements)."""
    if ceil_mode:
        raise NotImplementedError("avg_pool2d: ceil_mode=True is not supported")
    x, unbatched, views, (ph, pw), (kh, kw) = _geometry(x, kernel_size, stride, padding, 1,
                                                        "avg_pool2d")
    if divisor_override is not None:
        inv = 1.0 / float(divisor_override)
    elif count_include_pad or (ph, pw) == (0, 0):
        inv = 1.0 / float(kh * kw)
    else:  # count the real (unpadded) entries of each window
        ones = x.xp.pad(x.xp.ones(x.shape[2:], dtype=x.dtype), ((ph, ph), (pw, pw)))
        inv = 1.0 / sum(ones[v] for v in views)                     # (Ho, Wo)
    y = _WindowGather.apply(_pad_hw(x, ph, pw, 0.0), views=views, weights=[inv] * len(views))
    return y.squeeze(0) if unbatched else y


def _as_2d(x: Tensor, op: str) -> Tensor:
    if x.ndim not in (2, 3):
        raise ValueError(f"{op}: expected a (B, C, L) or (C, L) input, got shape "
                         f"{tuple(x.shape)}")
    return x.unsqueeze(-2)                                          # (..., C, 1, L)


def max_pool1d(x: Tensor, kernel_size: int, stride=None, padding: int = 0,
               dilation: int = 1) -> Tensor:
    y = max_pool2d(_as_2d(x, "max_pool1d"), (1, kernel_size),
                   (1, kernel_size if stride is None else stride), (0, padding), (1, dilation))
    return y.squeeze(-2)


def avg_pool1d(x: Tensor, kernel_size: int, stride=None, padding: int = 0,
               count_include_pad: bool = True) -> Tensor:
    y = avg_pool2d(_as_2d(x, "avg_pool1d"), (1, kernel_size),
                   (1, kernel_size if stride is None else stride), (0, padding),
                   count_include_pad=count_include_pad)
    return y.squeeze(-2)


def adaptive_avg_pool2d(x: Tensor, output_size) -> Tensor:
    """Average over the bins start = floor(i H / Ho), end = ceil((i + 1) H / Ho) (PyTorch's
    bins); (1, 1) is global average pooling."""
    ho, wo = _pair(output_size, "output_size", "adaptive_avg_pool2d")
    h, w = x.shape[-2:]
    if (ho, wo) == (1, 1):  # global average pooling: one reduction over contiguous axes
        return x.mean(axis=(-2, -1), keepdims=True)
    if h % ho == 0 and w % wo == 0 and x.ndim in (3, 4):  # equal bins: a plain avg pool
        return avg_pool2d(x, (h // ho, w // wo))
    if h % ho == 0 and w % wo == 0:
        lead = tuple(x.shape[:-2])
        win = x.reshape(lead + (ho, h // ho, wo, w // wo))          # (..., Ho, kh, Wo, kw)
        return win.mean(axis=(-3, -1))
    rows = []
    for i in range(ho):
        r0, r1 = (i * h) // ho, -(-((i + 1) * h) // ho)
        cols = [x[..., r0:r1, (j * w) // wo:-(-((j + 1) * w) // wo)].mean(axis=(-2, -1))
                for j in range(wo)]
        rows.append(stack(cols, axis=-1))
    return stack(rows, axis=-2)


def interpolate(x: Tensor, size=None, scale_factor=None, mode: str = "nearest") -> Tensor:
    """Nearest-neighbour upsampling of (B, C, H, W) by an integer factor (repeat each pixel);
    `size` must be an integer multiple of the input size."""
    if mode != "nearest":
        raise NotImplementedError(f"interpolate: mode '{mode}' is not supported (nearest only)")
    b, c, h, w = x.shape
    if scale_factor is not None:
        factors = scale_factor if isinstance(scale_factor, (tuple, list)) else \
            (scale_factor, scale_factor)
        if any(float(f) != int(f) or int(f) < 1 for f in factors):
            raise ValueError(f"interpolate: scale_factor must be a positive integer (nearest "
                             f"upsampling repeats pixels), got {scale_factor!r}")
        fh, fw = _pair(tuple(int(f) for f in factors), "scale_factor", "interpolate")
    elif size is not None:
        sh, sw = _pair(size, "size", "interpolate")
        if sh % h or sw % w:
            raise ValueError(f"interpolate: size {(sh, sw)} is not an integer multiple of the "
                             f"input size {(h, w)}")
        fh, fw = sh // h, sw // w
    else:
        raise ValueError("interpolate: give size or scale_factor")
    y = x.reshape(b, c, h, 1, w, 1).expand(b, c, h, fh, w, fw)     # (B, C, H, fh, W, fw)
    return y.reshape(b, c, h * fh, w * fw)
