"""PyTorch's device-agnostic queries (`torch.accelerator`): is there a GPU, and which.

Here the only accelerator kind is CUDA (through CuPy); without it `is_available()` is False
and `current_accelerator()` is None, so `device = tl.accelerator.current_accelerator() or
"cpu"` picks the CPU.
"""
from __future__ import annotations

from . import cuda
from .backend import Device

__all__ = ["is_available", "current_accelerator", "device_count", "set_device_index",
           "current_device_index"]


def is_available() -> bool:
    return cuda.is_available()


def current_accelerator() -> Device | None:
    """The device code should run on when it wants the accelerator, or None without one."""
    return Device(f"cuda:{cuda.current_device()}") if cuda.is_available() else None


def device_count() -> int:
    return cuda.device_count()


def set_device_index(index: int) -> None:
    """Make GPU `index` the current device (CUDA is the only accelerator here)."""
    cuda.set_device(index)


def current_device_index() -> int:
    return cuda.current_device()
