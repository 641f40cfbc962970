"""Normalization layers: BatchNorm1d/2d (Ioffe & Szegedy 2015), LayerNorm (Ba et al. 2016),
GroupNorm (Wu & He 2018): the layers. The ops (batch_norm, layer_norm, group_norm and their
derivatives) are in tinylatent/ops/normalization.py.

All three standardize over some axes and then apply a per-feature affine map. The
standardization is one Function (`_Standardize`) rather than a composite of ~8 ops: a
benchmark of LayerNorm on (128, 64, 256) float32 showed the composite making about twice as
many passes over memory. Its backward is written in Tensor ops, so second derivatives work.
"""
from __future__ import annotations

from ..ops.normalization import batch_norm, group_norm, instance_norm, layer_norm
from ..tensor import Tensor, ones, zeros
from . import init
from .module import Module, Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LayerNorm", "GroupNorm", "InstanceNorm1d",
           "InstanceNorm2d", "batch_norm", "layer_norm", "group_norm", "instance_norm"]


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
            self.num_batches_tracked.array[...] = 0

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
        count = self.training and self.track_running_stats
        if count and momentum is None:  # cumulative moving average, this batch included
            momentum = 1.0 / float(self.num_batches_tracked.item() + 1)
        # with track_running_stats the buffers are updated (training) or used (eval)
        y = batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                       use_batch, momentum or 0.0, self.eps)
        if count:   # only once batch_norm's checks passed: a rejected batch changes nothing
            self.num_batches_tracked.array[...] += 1
            self.num_batches_tracked._version += 1
        return y

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalization over (N, C) or (N, C, L) inputs, per channel C."""
    _dims = (2, 3)


class BatchNorm3d(_BatchNorm):
    """Batch normalization over (N, C, D, H, W) inputs, per channel C."""
    _dims = (5,)


class BatchNorm2d(_BatchNorm):
    """Batch normalization over (N, C, H, W) inputs, per channel C."""
    _dims = (4,)


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


class _InstanceNorm(_BatchNorm):
    """Instance normalization (Ulyanov et al. 2016) with PyTorch's defaults: no affine map
    and no running statistics unless asked for; with track_running_stats, eval mode uses
    the running statistics (as BatchNorm does)."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = False, track_running_stats: bool = False, device=None,
                 dtype=None) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device,
                         dtype)

    def forward(self, x: Tensor) -> Tensor:
        name = type(self).__name__
        if x.ndim not in self._dims:
            raise ValueError(f"{name}: expected a {' or '.join(f'{d}-D' for d in self._dims)} "
                             f"input, got shape {tuple(x.shape)}")
        batched = x.ndim == self._dims[-1]
        xb = x if batched else x.unsqueeze(0)                          # (N, C, ...)
        if xb.shape[1] != self.num_features and (self.affine or self.track_running_stats):
            raise ValueError(f"{name}: input has {xb.shape[1]} channels (shape "
                             f"{tuple(x.shape)}), expected num_features={self.num_features}")
        use_input_stats = self.training or not self.track_running_stats
        # running buffers (if any) are updated in training and used in eval mode
        y = instance_norm(xb, self.running_mean, self.running_var, self.weight, self.bias,
                          use_input_stats,
                          self.momentum if self.momentum is not None else 0.1, self.eps)
        if self.training and self.track_running_stats:
            self.num_batches_tracked.array[...] += 1
            self.num_batches_tracked._version += 1
        return y if batched else y.squeeze(0)


class InstanceNorm1d(_InstanceNorm):
    """Instance normalization of (N, C, L) or (C, L) inputs over L."""
    _dims = (2, 3)


class InstanceNorm2d(_InstanceNorm):
    """Instance normalization of (N, C, H, W) or (C, H, W) inputs over H, W."""
    _dims = (3, 4)
