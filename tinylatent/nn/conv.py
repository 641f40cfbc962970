"""Convolution layers on top of tl.ops.conv (the im2col reference, or a fast kernel behind
the same signature). Parameter shapes and default init are PyTorch's:
Conv weight (C_out, C_in/groups, kh, kw), ConvTranspose weight (C_in, C_out/groups, kh, kw),
W ~ kaiming_uniform(a=sqrt(5)) and b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
from __future__ import annotations

import numbers

from ..ops import conv as conv_ops
from ..tensor import Tensor, empty
from . import init
from .module import Module, Parameter

__all__ = ["Conv1d", "Conv2d", "ConvTranspose2d", "conv1d", "conv2d", "conv_transpose2d"]

conv2d = conv_ops.conv2d
conv_transpose2d = conv_ops.conv_transpose2d


def _tuple(v, n: int, name: str, op: str) -> tuple:
    t = (v,) * n if isinstance(v, int) else tuple(v)
    if len(t) != n:
        raise ValueError(f"{op}: {name} must be an int or a {n}-tuple, got {v!r}")
    return t


def conv1d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int = 1,
           padding=0, dilation: int = 1, groups: int = 1) -> Tensor:
    """1-D convolution x (B, C_in, L), weight (C_out, C_in/groups, k), as a 2-D convolution of
    a height-1 image."""
    if x.ndim != 3 or weight.ndim != 3:
        raise ValueError(f"conv1d: expected input (B, C, L) and weight (C_out, C_in/g, k), got "
                         f"shapes {tuple(x.shape)} and {tuple(weight.shape)}")
    stride, dilation = _tuple(stride, 1, "stride", "conv1d")[0], \
        _tuple(dilation, 1, "dilation", "conv1d")[0]
    pad2d = padding if isinstance(padding, str) else (0, _tuple(padding, 1, "padding",
                                                                "conv1d")[0])
    y = conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias, (1, stride), pad2d,
               (1, dilation), groups)                              # (B, C_out, 1, Lo)
    return y.squeeze(2)


class _ConvNd(Module):
    _n = 2
    _transposed = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride, padding,
                 dilation, groups: int, bias: bool, device, dtype) -> None:
        super().__init__()
        name = type(self).__name__
        for arg, v in (("in_channels", in_channels), ("out_channels", out_channels),
                       ("groups", groups)):
            if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}: {arg} must be a positive int, got {v!r}")
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: in_channels={in_channels} and out_channels="
                             f"{out_channels} must both be divisible by groups={groups}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _tuple(kernel_size, self._n, "kernel_size", name)
        self.stride = _tuple(stride, self._n, "stride", name)
        self.padding = padding if isinstance(padding, str) else \
            _tuple(padding, self._n, "padding", name)
        self.dilation = _tuple(dilation, self._n, "dilation", name)
        for arg, v, lo in (("kernel_size", self.kernel_size, 1), ("stride", self.stride, 1),
                           ("dilation", self.dilation, 1),
                           ("padding", () if isinstance(padding, str) else self.padding, 0)):
            if any(not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < lo
                   for k in v):
                raise ValueError(f"{name}: {arg} must be {'positive' if lo else 'non-negative'}"
                                 f" ints, got {v}")
        if self._transposed:
            shape = (in_channels, out_channels // groups) + self.kernel_size
        else:
            shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = Parameter(empty(shape, dtype=dtype, device=device))
        if bias:
            self.bias = Parameter(empty(out_channels, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.default_linear_(self.weight, self.bias)

    def _batched(self, x: Tensor) -> tuple[Tensor, bool]:
        want = self._n + 2
        if x.ndim == want - 1:
            return x.unsqueeze(0), True
        if x.ndim != want:
            raise ValueError(f"{type(self).__name__}: expected a {want}-D (batched) or "
                             f"{want - 1}-D input, got shape {tuple(x.shape)}")
        return x, False

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0,) * self._n:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self._n:
            s += f", dilation={self.dilation}"
        if getattr(self, "output_padding", (0,) * self._n) != (0,) * self._n:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class _Conv(_ConvNd):
    """Conv1d and Conv2d: the same layer over a different number of spatial axes."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 device=None, dtype=None) -> None:
        if padding_mode != "zeros":
            raise NotImplementedError(f"{type(self).__name__}: padding_mode "
                                      f"'{padding_mode}' is not supported (only 'zeros'); "
                                      "pad the input with F.pad first")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, device, dtype)

    def forward(self, x: Tensor) -> Tensor:
        x, unbatched = self._batched(x)
        y = self._conv(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                       self.groups)
        return y.squeeze(0) if unbatched else y


class Conv2d(_Conv):
    """2-D convolution (cross-correlation) over (B, C_in, H, W) -> (B, C_out, Ho, Wo),
    Ho = floor((H + 2 p - d (k - 1) - 1) / s) + 1. padding may be 'same' or 'valid'."""
    _conv = staticmethod(conv2d)


class Conv1d(_Conv):
    """1-D convolution over (B, C_in, L) -> (B, C_out, Lo) (e.g. WaveNet's causal stacks:
    pad on the left yourself with F.pad and use padding=0)."""
    _n = 1
    _conv = staticmethod(conv1d)


class ConvTranspose2d(_ConvNd):
    """Transposed convolution (the adjoint of Conv2d w.r.t. its input; "up-convolution"):
    Ho = (H - 1) s - 2 p + d (k - 1) + output_padding + 1.
    forward(x, output_size=None): output_size picks output_padding for you."""
    _transposed = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, groups: int = 1, bias: bool = True, dilation=1,
                 device=None, dtype=None) -> None:
        if isinstance(padding, str):
            raise ValueError("ConvTranspose2d: padding must be an int or a pair")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, device, dtype)
        self.output_padding = _tuple(output_padding, 2, "output_padding", "ConvTranspose2d")
        for op, s, d in zip(self.output_padding, self.stride, self.dilation):
            if op >= max(s, d):
                raise ValueError(f"ConvTranspose2d: output_padding {self.output_padding} must "
                                 f"be smaller than stride {self.stride} or dilation "
                                 f"{self.dilation}")

    def forward(self, x: Tensor, output_size=None) -> Tensor:
        x, unbatched = self._batched(x)
        output_padding = self.output_padding
        if output_size is not None:
            target = tuple(output_size)[-2:]
            base = conv_ops.conv_transpose2d_output_shape(
                x.shape[2], x.shape[3], self.kernel_size, self.stride, self.padding, (0, 0),
                self.dilation)
            output_padding = tuple(t - b for t, b in zip(target, base))
            if any(not 0 <= p < max(s, d) for p, s, d in
                   zip(output_padding, self.stride, self.dilation)):
                raise ValueError(f"ConvTranspose2d: output_size {target} is not reachable "
                                 f"from input {tuple(x.shape)}; sizes from {base} to "
                                 f"{tuple(b + s - 1 for b, s in zip(base, self.stride))}")
        y = conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                             output_padding, self.dilation, self.groups)
        return y.squeeze(0) if unbatched else y
