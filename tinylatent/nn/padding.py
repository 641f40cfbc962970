"""Padding and pixel-shuffle layers (PyTorch's nn.ReflectionPad2d, ..., nn.PixelShuffle):
thin modules over ops.pad and ops.pixel_shuffle, where the formulas and derivatives are."""
from __future__ import annotations

from ..ops import pad, pixel_shuffle, pixel_unshuffle
from ..tensor import Tensor
from .module import Module

__all__ = ["ReflectionPad1d", "ReflectionPad2d", "ReplicationPad1d", "ReplicationPad2d",
           "ZeroPad2d", "ConstantPad1d", "ConstantPad2d", "CircularPad2d", "PixelShuffle",
           "PixelUnshuffle"]


class _Pad(Module):
    mode = "constant"
    n_axes = 2           # how many trailing axes it pads

    def __init__(self, padding, value: float = 0.0) -> None:
        super().__init__()
        if isinstance(padding, int):
            padding = (padding,) * (2 * self.n_axes)
        padding = tuple(int(p) for p in padding)
        if len(padding) != 2 * self.n_axes:
            sides = "left, right" + (", top, bottom" if self.n_axes == 2 else "")
            raise ValueError(f"{type(self).__name__}: padding must be an int or "
                             f"{2 * self.n_axes} ints ({sides}), got {padding}")
        self.padding, self.value = padding, value

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in (self.n_axes + 1, self.n_axes + 2):
            raise ValueError(f"{type(self).__name__}: expected a {self.n_axes + 1}-D or "
                             f"{self.n_axes + 2}-D input, got shape {tuple(x.shape)}")
        if self.mode == "constant":
            return pad(x, self.padding, value=self.value)
        return pad(x, self.padding, mode=self.mode)

    def extra_repr(self) -> str:
        return f"{self.padding}" + (f", value={self.value}" if self.mode == "constant" else "")


class ReflectionPad1d(_Pad):
    """Pad the last axis with its mirror image, edges not repeated: (left, right)."""
    mode, n_axes = "reflect", 1


class ReflectionPad2d(_Pad):
    """Pad the last two axes with their mirror image, edges not repeated:
    (left, right, top, bottom)."""
    mode, n_axes = "reflect", 2


class ReplicationPad1d(_Pad):
    """Pad the last axis by repeating its edge values."""
    mode, n_axes = "replicate", 1


class ReplicationPad2d(_Pad):
    """Pad the last two axes by repeating their edge values."""
    mode, n_axes = "replicate", 2


class CircularPad2d(_Pad):
    """Pad the last two axes by wrapping them around."""
    mode, n_axes = "circular", 2


class ConstantPad1d(_Pad):
    """Pad the last axis with a constant value."""
    n_axes = 1

    def __init__(self, padding, value: float) -> None:
        super().__init__(padding, value)


class ConstantPad2d(_Pad):
    """Pad the last two axes with a constant value."""

    def __init__(self, padding, value: float) -> None:
        super().__init__(padding, value)


class ZeroPad2d(_Pad):
    """Pad the last two axes with zeros."""

    def __init__(self, padding) -> None:
        super().__init__(padding, 0.0)


class PixelShuffle(Module):
    """(*, C r^2, H, W) -> (*, C, H r, W r): sub-pixel convolution's upsampling step
    (Shi et al. 2016)."""

    def __init__(self, upscale_factor: int) -> None:
        super().__init__()
        self.upscale_factor = upscale_factor

    def forward(self, x: Tensor) -> Tensor:
        return pixel_shuffle(x, self.upscale_factor)

    def extra_repr(self) -> str:
        return f"upscale_factor={self.upscale_factor}"


class PixelUnshuffle(Module):
    """(*, C, H r, W r) -> (*, C r^2, H, W), the inverse of PixelShuffle."""

    def __init__(self, downscale_factor: int) -> None:
        super().__init__()
        self.downscale_factor = downscale_factor

    def forward(self, x: Tensor) -> Tensor:
        return pixel_unshuffle(x, self.downscale_factor)

    def extra_repr(self) -> str:
        return f"downscale_factor={self.downscale_factor}"
