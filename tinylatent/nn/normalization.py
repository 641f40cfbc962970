"""Normalization layers: BatchNorm1d/2d (Ioffe & Szegedy 2015), LayerNorm (Ba et al. 2016),
GroupNorm (Wu & He 2018).

All three standardize over some axes and then apply a per-feature affine map. The
standardization is one Function (`_Standardize`) rather than a composite of ~8 ops: a
benchmark of LayerNorm on (128, 64, 256) float32 showed the composite making about twice as
many passes over memory. Its backward is written in Tensor ops, so second derivatives work.
"""
from __future__ import annotations

from .. import autograd
from ..autograd import Function
from ..tensor import Tensor, ones, zeros
from . import init
from .module import Module, Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "batch_norm", "layer_norm",
           "group_norm"]


class _Standardize(Function):
    """xhat = (x - mean) * rstd,  rstd = 1 / sqrt(var + eps), mean and biased var over `axes`;
    dL/dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  g = dL/dxhat.

    xhat is saved as the op's output, so under create_graph it stays connected to x; rstd is
    then recomputed from x in Tensor ops (a constant rstd would drop a term of the second
    derivative). Without create_graph the forward's rstd array is reused."""

    @staticmethod
    def forward(ctx, x, axes, eps, stats=None):
        mu = x.mean(axis=axes, keepdims=True)
        d = x - mu
        var = (d * d).mean(axis=axes, keepdims=True)
        rstd = 1.0 / ctx.xp.sqrt(var + eps)
        xhat = d * rstd
        if stats is not None:  # batch norm's running statistics
            stats["mean"], stats["var"] = mu, var
        ctx.axes, ctx.eps, ctx.rstd = axes, eps, rstd
        ctx.save_for_backward(x, xhat)
        return xhat

    @staticmethod
    def backward(ctx, grad):
        x, xhat = ctx.saved_tensors
        axes = ctx.axes
        if autograd.is_grad_enabled():
            d = x - x.mean(axis=axes, keepdims=True)
            rstd = ((d * d).mean(axis=axes, keepdims=True) + ctx.eps).rsqrt()
        else:
            rstd = Tensor._make(ctx.rstd)
        g_mean = grad.mean(axis=axes, keepdims=True)
        gx_mean = (grad * xhat).mean(axis=axes, keepdims=True)
        return rstd * (grad - g_mean - xhat * gx_mean), None, None


def _channel_shape(x: Tensor) -> tuple:
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _channel_affine(y: Tensor, weight: Tensor | None, bias: Tensor | None) -> Tensor:
    """y * weight + bias with per-channel (axis 1) weight and bias, either may be None."""
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
    running_mean.data[...] = (1 - m) * running_mean.data + m * mu.astype(running_mean.dtype)
    unbiased = var * (n / (n - 1))
    running_var.data[...] = (1 - m) * running_var.data + m * unbiased.astype(running_var.dtype)
    running_mean._version += 1
    running_var._version += 1


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
        n = x.size // x.shape[1]
        if n <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when "
                             f"training, got input of shape {tuple(x.shape)}")
        stats: dict = {}
        y = _Standardize.apply(x, axes, eps, stats=stats)          # batch mean / biased var
        if running_mean is not None:
            _update_running_stats(running_mean, running_var, stats["mean"].reshape(-1),
                                  stats["var"].reshape(-1), n, momentum)      # (C,)
    else:
        if running_mean is None:
            raise ValueError("batch_norm: eval mode needs running statistics (or "
                             "track_running_stats=False, which always uses batch statistics)")
        mu = running_mean.detach().reshape(shape).to(x.dtype)
        inv = (running_var.detach().reshape(shape).to(x.dtype) + eps).rsqrt()
        y = (x - mu) * inv
    return _channel_affine(y, weight, bias)


class _BatchNorm(Module):
    _dims: tuple = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device=None,
                 dtype=None) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(ones(num_features, dtype=dtype, device=device))
            self.bias = Parameter(zeros(num_features, dtype=dtype, device=device))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", zeros(num_features, dtype=dtype,
                                                       device=device))
            self.register_buffer("running_var", ones(num_features, dtype=dtype, device=device))
            self.register_buffer("num_batches_tracked", zeros((), dtype="int64",
                                                              device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        name = type(self).__name__
        if x.ndim not in self._dims:
            raise ValueError(f"{name}: expected a {' or '.join(f'{d}-D' for d in self._dims)} "
                             f"input, got shape {tuple(x.shape)}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{name}: input has {x.shape[1]} channels (shape "
                             f"{tuple(x.shape)}), expected num_features={self.num_features}")
        use_batch = self.training or not self.track_running_stats
        momentum = self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data[...] += 1
            if momentum is None:  # cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked.item())
        # with track_running_stats the buffers are updated (training) or used (eval)
        return batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                          use_batch, momentum or 0.0, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalization over (N, C) or (N, C, L) inputs, per channel C."""
    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization over (N, C, H, W) inputs, per channel C."""
    _dims = (4,)


def layer_norm(x: Tensor, normalized_shape, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the trailing
    `normalized_shape` axes of each sample (biased variance)."""
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) \
        else tuple(normalized_shape)
    k = len(normalized_shape)
    if tuple(x.shape[x.ndim - k:]) != normalized_shape:
        raise ValueError(f"layer_norm: input shape {tuple(x.shape)} does not end with "
                         f"normalized_shape {normalized_shape}")
    axes = tuple(range(x.ndim - k, x.ndim))
    y = _Standardize.apply(x, axes, eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


class LayerNorm(Module):
    """Normalizes each sample over its trailing `normalized_shape` axes; learnable
    elementwise weight (1) and bias (0)."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) \
            else tuple(normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(ones(self.normalized_shape, dtype=dtype, device=device))
            if bias:
                self.bias = Parameter(zeros(self.normalized_shape, dtype=dtype, device=device))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


def group_norm(x: Tensor, num_groups: int, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalize each sample over groups of C / num_groups channels (and all spatial axes);
    per-channel affine."""
    n, c = x.shape[0], x.shape[1]
    if c % num_groups:
        raise ValueError(f"group_norm: {c} channels are not divisible into {num_groups} "
                         "groups")
    g = x.reshape(n, num_groups, -1)                              # (N, G, C/G * spatial)
    y = _Standardize.apply(g, (2,), eps).reshape(x.shape)
    return _channel_affine(y, weight, bias)


class GroupNorm(Module):
    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels={num_channels} is not divisible by "
                             f"num_groups={num_groups}")
        self.num_groups, self.num_channels, self.eps, self.affine = \
            num_groups, num_channels, eps, affine
        if affine:
            self.weight = Parameter(ones(num_channels, dtype=dtype, device=device))
            self.bias = Parameter(zeros(num_channels, dtype=dtype, device=device))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        return group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"
