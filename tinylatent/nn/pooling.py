"""Pooling and upsampling layers; the ops themselves (with their derivatives) are in
tinylatent/ops/pooling.py."""
from __future__ import annotations

from ..ops.pooling import (adaptive_avg_pool2d, avg_pool1d, avg_pool2d, interpolate, max_pool1d,
                           max_pool2d)
from ..tensor import Tensor
from .module import Module

__all__ = ["MaxPool2d", "AvgPool2d", "MaxPool1d", "AvgPool1d", "AdaptiveAvgPool2d",
           "Upsample", "max_pool2d", "avg_pool2d", "max_pool1d", "avg_pool1d",
           "adaptive_avg_pool2d", "interpolate"]


class _Pool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Max over kernel_size windows; stride defaults to kernel_size."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 ceil_mode: bool = False) -> None:
        super().__init__(kernel_size, stride, padding)
        self.dilation = dilation
        if ceil_mode:
            raise NotImplementedError("MaxPool2d: ceil_mode=True is not supported")

    def forward(self, x: Tensor) -> Tensor:
        return max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", dilation={self.dilation}"


class AvgPool2d(_Pool2d):
    """Mean over kernel_size windows; stride defaults to kernel_size."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None) -> None:
        super().__init__(kernel_size, stride, padding)
        if ceil_mode:
            raise NotImplementedError("AvgPool2d: ceil_mode=True is not supported")
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, x: Tensor) -> Tensor:
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding,
                          count_include_pad=self.count_include_pad,
                          divisor_override=self.divisor_override)


class MaxPool1d(_Pool2d):
    def __init__(self, kernel_size: int, stride=None, padding: int = 0,
                 dilation: int = 1) -> None:
        super().__init__(kernel_size, stride, padding)
        self.dilation = dilation

    def forward(self, x: Tensor) -> Tensor:
        return max_pool1d(x, self.kernel_size, self.stride, self.padding, self.dilation)


class AvgPool1d(_Pool2d):
    def __init__(self, kernel_size: int, stride=None, padding: int = 0,
                 count_include_pad: bool = True) -> None:
        super().__init__(kernel_size, stride, padding)
        self.count_include_pad = count_include_pad

    def forward(self, x: Tensor) -> Tensor:
        return avg_pool1d(x, self.kernel_size, self.stride, self.padding,
                          self.count_include_pad)


class AdaptiveAvgPool2d(Module):
    def __init__(self, output_size) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        return adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class Upsample(Module):
    """Nearest-neighbour upsampling by an integer scale_factor (or to an integer-multiple
    size)."""

    def __init__(self, size=None, scale_factor=None, mode: str = "nearest") -> None:
        super().__init__()
        if mode != "nearest":
            raise NotImplementedError(f"Upsample: mode '{mode}' is not supported "
                                      "(nearest only)")
        self.size, self.scale_factor, self.mode = size, scale_factor, mode

    def forward(self, x: Tensor) -> Tensor:
        return interpolate(x, self.size, self.scale_factor, self.mode)

    def extra_repr(self) -> str:
        return f"scale_factor={self.scale_factor}, mode='{self.mode}'" \
            if self.scale_factor is not None else f"size={self.size}, mode='{self.mode}'"
