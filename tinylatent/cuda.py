"""CUDA device queries, PyTorch-style: `tl.cuda.is_available()`, `tl.cuda.device_count()`.

CuPy is optional. Without it, or without a GPU, every query answers (False, 0) and
`unavailable_reason()` says why in words (the CUDA tests print it when they skip).
"""
from __future__ import annotations

from .backend import cuda_available, cuda_unavailable_reason, get_cupy

__all__ = ["is_available", "device_count", "unavailable_reason", "synchronize",
           "current_device", "get_device_name"]


def is_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    return cuda_available()


def unavailable_reason() -> str:
    """Why `is_available()` is False ('' when it is True)."""
    return cuda_unavailable_reason()


def device_count() -> int:
    if not cuda_available():
        return 0
    return int(get_cupy().cuda.runtime.getDeviceCount())


def current_device() -> int:
    return int(get_cupy().cuda.Device().id)


def get_device_name(index: int = 0) -> str:
    cp = get_cupy()
    props = cp.cuda.runtime.getDeviceProperties(index)
    n = props["name"]
    return n.decode() if isinstance(n, bytes) else str(n)


def synchronize() -> None:
    """Wait for every queued GPU kernel (needed before timing GPU work)."""
    if cuda_available():
        get_cupy().cuda.Device().synchronize()
