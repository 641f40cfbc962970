"""Normalization layers: BatchNorm1d/2d (Ioffe & Szegedy 2015), LayerNorm (Ba et al. 2016),
GroupNorm (Wu & He 2018).

All three standardize over some axes and then apply a per-feature affine map. The
standardization is one Function (`_Standardize`) rather than a composite of ~8 ops: a
benchmark of LayerNorm on (128, 64, 256) float32 showed the composite making about twice as
many passes over memory. Its backward is written in Tensor ops, so second derivatives work.
"""
from __future__ import annotations

from .. import autograd
from ..autograd import Function, is_grad_enabled
from ..tensor import Tensor
from .fast import fast_backend, reference_vjp

__all__ = ["batch_norm", "layer_norm", "layer_norm_reference", "group_norm", "instance_norm",
           "LayerNormFn", "BatchNormFn"]


class _Standardize(Function):
    """(xhat, mean, var): xhat = (x - mean) * rstd, rstd = 1 / sqrt(var + eps), with the mean
    and biased var over `axes` (kept as size-1 axes; batch norm's running statistics).
    dL/dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  g = dL/dxhat,
          + g_mean / n + g_var * 2 (x - mean) / n   (if gradients reach mean or var).

    xhat is saved as the op's output, so under create_graph it stays connected to x; rstd is
    then recomputed from x in Tensor ops (a constant rstd would drop a term of the second
    derivative). Without create_graph the forward's rstd array is reused."""

    @staticmethod
    def forward(ctx, x, *, axes, eps):
        mu = x.mean(axis=axes, keepdims=True)
        d = x - mu
        var = (d * d).mean(axis=axes, keepdims=True)
        rstd = 1.0 / ctx.xp.sqrt(var + eps)
        xhat = d * rstd
        ctx.axes, ctx.eps, ctx.rstd = axes, eps, rstd
        ctx.save_for_backward(x, xhat)
        return xhat, mu, var

    @staticmethod
    def backward(ctx, grad, grad_mean, grad_var):
        x, xhat = ctx.saved_tensors
        axes = ctx.axes
        if autograd.is_grad_enabled() or grad_var is not None:
            d = x - x.mean(axis=axes, keepdims=True)
            rstd = ((d * d).mean(axis=axes, keepdims=True) + ctx.eps).rsqrt()
        else:
            rstd = Tensor._make(ctx.rstd)
        gx = None
        if grad is not None:
            g_mean = grad.mean(axis=axes, keepdims=True)
            gx_mean = (grad * xhat).mean(axis=axes, keepdims=True)
            gx = rstd * (grad - g_mean - xhat * gx_mean)
        n = _count(x.shape, axes)
        if grad_mean is not None:
            term = grad_mean.expand(x.shape) * (1.0 / n)
            gx = term if gx is None else gx + term
        if grad_var is not None:
            term = grad_var * d * (2.0 / n)
            gx = term if gx is None else gx + term
        return gx


def _count(shape: tuple, axes: tuple) -> int:
    n = 1
    for a in axes:
        n *= shape[a]
    return n


def _channel_shape(x: Tensor) -> tuple:
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _channel_affine(y: Tensor, weight: Tensor | None, bias: Tensor | None) -> Tensor:
    """y * weight + bias with per-channel (axis 1) weight and bias, either may be None
    (batch_norm, group_norm and nn.parallel's sync_batch_norm)."""
    shape = _channel_shape(y)
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


def _update_running_stats(running_mean: Tensor, running_var: Tensor, mu, var, n: int,
                          momentum: float) -> None:
    """running = (1 - momentum) * running + momentum * stat, in place, with the unbiased
    variance var * n / (n - 1) of the n values per channel (PyTorch's rule); mu, var: the
    batch mean and biased variance, arrays of C values."""
    m = momentum
    running_mean.array[...] = (1 - m) * running_mean.array + m * mu.astype(running_mean.dtype)
    unbiased = var * (n / (n - 1))
    running_var.array[...] = (1 - m) * running_var.array + m * unbiased.astype(running_var.dtype)
    running_mean._version += 1
    running_var._version += 1


class BatchNormFn(Function):
    """Training-mode batch norm with its affine map as one node (Ioffe & Szegedy 2015, Alg. 1,
    and the backward of their Sec. 3), over every axis but 1:
        mu, var = batch mean and biased variance,  rstd = 1 / sqrt(var + eps),
        xhat = (x - mu) rstd,  y = xhat w + b;      outputs (y, mu, var)
        gw = sum g xhat,  gb = sum g,  gx = rstd w (g - gb / n - xhat gw / n)
    The composite (_Standardize, then a Mul and an Add, each with its own reductions) made
    five nodes and about twice the passes over x in the backward. Under create_graph, or if
    a gradient reaches mu or var, the backward differentiates `reference` (that composite)
    on the same inputs, so higher derivatives are those of the tested composite."""

    @staticmethod
    def forward(ctx, x, weight, bias, *, axes, eps, reference):
        shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        mu = x.mean(axis=axes, keepdims=True)
        xhat = x - mu
        var = (xhat * xhat).mean(axis=axes, keepdims=True)
        rstd = 1.0 / ctx.xp.sqrt(var + eps)
        xhat *= rstd                                  # in place: d becomes xhat
        y = xhat * weight.reshape(shape)
        y += bias.reshape(shape)
        ctx.axes, ctx.reference = axes, reference
        ctx.save_for_backward(x, weight, bias, xhat, rstd)   # freed with the graph's values
        return y, mu, var

    @staticmethod
    def backward(ctx, grad, grad_mean, grad_var):
        x, weight, bias, xhat, rstd = ctx.saved_tensors
        if is_grad_enabled() or grad_mean is not None or grad_var is not None:
            return reference_vjp(ctx.reference, (x, weight, bias), grad, grad_mean, grad_var)
        g, xhat, axes = grad.array, xhat.array, ctx.axes
        gb = g.sum(axis=axes)                              # (C,): owns its memory, so the
        gw = (g * xhat).sum(axis=axes)                     # leaf's .grad takes it uncopied
        shape = rstd.shape                                                    # (1, C, 1..)
        a = rstd.array * weight.array.reshape(shape)      # rstd w per channel
        n = _count(x.shape, axes)
        gx = g * a
        gx -= xhat * (a * gw.reshape(shape) / n)
        gx -= a * gb.reshape(shape) / n
        need = ctx.needs_input_grad
        return (Tensor._make(gx) if need[0] else None,
                Tensor._make(gw) if need[1] else None,
                Tensor._make(gb) if need[2] else None)


def batch_norm(x: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """y = (x - mu) / sqrt(var + eps) * weight + bias per channel (axis 1).

    training: mu, var are the batch statistics over every axis but 1 (biased var, as the
    paper normalizes), and the running buffers are updated in place:
        running = (1 - momentum) * running + momentum * stat,
    with the *unbiased* batch variance for running_var (PyTorch's rule).
    Not training: the running statistics are used.
    """
    if x.ndim < 2:
        raise ValueError(f"batch_norm: input must be (N, C, ...), got shape {tuple(x.shape)}")
    axes = (0,) + tuple(range(2, x.ndim))
    shape = _channel_shape(x)
    if training:
        n = x.numel() // x.shape[1]
        if n <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when "
                             f"training, got input of shape {tuple(x.shape)}")
        if weight is not None and bias is not None and weight.dtype == x.dtype \
                and bias.dtype == x.dtype and weight.shape == (x.shape[1],) \
                and bias.shape == (x.shape[1],) and x.dtype.kind == "f":
            def reference(x_, w_, b_):
                y_, mu_, var_ = _Standardize.apply(x_, axes=axes, eps=eps)
                return _channel_affine(y_, w_, b_), mu_, var_
            y, mu, var = BatchNormFn.apply(x, weight, bias, axes=axes, eps=eps,
                                           reference=reference)
            weight = bias = None                      # the affine map is done
        else:
            y, mu, var = _Standardize.apply(x, axes=axes, eps=eps)   # batch mean / biased var
        if running_mean is not None:
            _update_running_stats(running_mean, running_var, mu.array.reshape(-1),
                                  var.array.reshape(-1), n, momentum)          # (C,)
    else:
        if running_mean is None:
            raise ValueError("batch_norm: eval mode needs running statistics (or "
                             "track_running_stats=False, which always uses batch statistics)")
        mu = running_mean.detach().reshape(shape).to(x.dtype)
        inv = (running_var.detach().reshape(shape).to(x.dtype) + eps).rsqrt()
        y = (x - mu) * inv
    return _channel_affine(y, weight, bias)


class LayerNormFn(Function):
    """The fused LayerNorm over the last axis (Ba et al. 2016, Sec. 3), on a kernel backend:
        y = (x - mu) rstd w + b,  rstd = 1 / sqrt(var + eps)   (one pass for mu and var),
        gx = rstd (gh - mean(gh) - xhat mean(gh xhat)),  gh = gy w,
        gw = sum_rows gy xhat,  gb = sum_rows gy            (one backward kernel).
    Under create_graph the backward differentiates `reference` (the _Standardize
    composite) on the same inputs, so higher derivatives are those of the tested reference."""

    @staticmethod
    def forward(ctx, x, weight, bias, *, eps, be, reference):
        d = x.shape[-1]
        y2, mu, rstd = be.layer_norm(be.c(x).reshape(-1, d), weight, bias, eps)  # (R, D)
        ctx.be, ctx.reference, ctx.stats = be, reference, (mu, rstd)
        ctx.save_for_backward(x, weight, bias)
        return y2 if y2.shape == x.shape else y2.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        x, weight, bias = ctx.saved_tensors
        if is_grad_enabled():
            return reference_vjp(ctx.reference, (x, weight, bias), grad)
        be, d = ctx.be, x.shape[-1]
        gx, gw, gb = be.layer_norm_backward(be.c(grad.array).reshape(-1, d),
                                            be.c(x.array).reshape(-1, d), weight.array,
                                            *ctx.stats)
        # reshape only when needed: a view (even of the same shape) has a .base, and a leaf
        # input's .grad then copies it (autograd never shares a view's memory)
        gx = gx if gx.shape == x.shape else gx.reshape(x.shape)
        return Tensor._make(gx), Tensor._make(gw), Tensor._make(gb)


def layer_norm(x: Tensor, normalized_shape, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the trailing
    `normalized_shape` axes of each sample (biased variance). Over the last axis with both
    weight and bias (nn.LayerNorm's usual case) of a float32/64 tensor (float16 and bfloat16
    on the GPU) it runs LayerNormFn on a kernel backend when one applies; otherwise, and as
    the oracle, `layer_norm_reference`."""
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) \
        else tuple(normalized_shape)
    k = len(normalized_shape)
    if tuple(x.shape[x.ndim - k:]) != normalized_shape:
        raise ValueError(f"layer_norm: input shape {tuple(x.shape)} does not end with "
                         f"normalized_shape {normalized_shape}")
    if k == 1 and weight is not None and bias is not None and x.numel() > 0 \
            and weight.shape == normalized_shape and bias.shape == normalized_shape \
            and weight.dtype == x.dtype and bias.dtype == x.dtype:
        be = fast_backend(x, weight, bias, op="layer_norm")
        if be is not None:
            return LayerNormFn.apply(
                x, weight, bias, eps=eps, be=be,
                reference=lambda x_, w_, b_: layer_norm_reference(x_, normalized_shape, w_,
                                                                  b_, eps))
    return layer_norm_reference(x, normalized_shape, weight, bias, eps)


def layer_norm_reference(x: Tensor, normalized_shape, weight: Tensor | None = None,
                         bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """layer_norm in Tensor ops (_Standardize, then the affine map): the test oracle."""
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) \
        else tuple(normalized_shape)
    k = len(normalized_shape)
    axes = tuple(range(x.ndim - k, x.ndim))
    y = _Standardize.apply(x, axes=axes, eps=eps)[0]
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def group_norm(x: Tensor, num_groups: int, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalize each sample over groups of C / num_groups channels (and all spatial axes);
    per-channel affine."""
    n, c = x.shape[0], x.shape[1]
    if c % num_groups:
        raise ValueError(f"group_norm: {c} channels are not divisible into {num_groups} "
                         "groups")
    g = x.reshape(n, num_groups, -1)                              # (N, G, C/G * spatial)
    y = _Standardize.apply(g, axes=(2,), eps=eps)[0].reshape(x.shape)
    return _channel_affine(y, weight, bias)


def instance_norm(x: Tensor, running_mean: Tensor | None = None,
                  running_var: Tensor | None = None, weight: Tensor | None = None,
                  bias: Tensor | None = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Instance normalization (Ulyanov et al. 2016, Eq. 2): each channel of each sample
    standardized over its spatial axes, y_nc = (x_nc - mu_nc) / sqrt(var_nc + eps) (biased
    var), then the per-channel affine map: group_norm with one channel per group.

    use_input_stats (PyTorch's name): the per-instance statistics, and with running buffers
    they move towards the batch average of the instance statistics (unbiased variance, as
    PyTorch does); otherwise the running statistics are used, as batch_norm in eval mode."""
    if x.ndim < 3:
        raise ValueError(f"instance_norm: input must be (N, C, spatial...), got shape "
                         f"{tuple(x.shape)}")
    if not use_input_stats:
        return batch_norm(x, running_mean, running_var, weight, bias, False, momentum, eps)
    n, c = x.shape[0], x.shape[1]
    g = x.reshape(n, c, -1)                                        # (N, C, spatial)
    m = g.shape[2]
    if m <= 1:
        raise ValueError(f"instance_norm: expected more than 1 spatial element per channel, "
                         f"got input of shape {tuple(x.shape)}")
    y, mu, var = _Standardize.apply(g, axes=(2,), eps=eps)
    if running_mean is not None:
        _update_running_stats(running_mean, running_var, mu.array.reshape(n, c).mean(0),
                              var.array.reshape(n, c).mean(0), m, momentum)      # (C,)
    return _channel_affine(y.reshape(x.shape), weight, bias)
