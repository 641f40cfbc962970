"""CUDA device queries, PyTorch-style: `tl.cuda.is_available()`, `tl.cuda.device_count()`.

CuPy is optional. Without it, or without a GPU, every query answers (False, 0) and
`unavailable_reason()` says why in words (the CUDA tests print it when they skip).
"""
from __future__ import annotations

from .backend import cuda_available, cuda_unavailable_reason, get_cupy

__all__ = ["is_available", "device_count", "unavailable_reason", "synchronize",
           "current_device", "get_device_name", "manual_seed", "manual_seed_all",
           "set_device", "empty_cache", "device", "FloatTensor", "DoubleTensor", "LongTensor"]


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


def manual_seed(seed: int) -> None:
    """Seed the GPU's random numbers. tinylatent derives the GPU stream of a generator from
    its CPU stream (one seed fixes both), so this seeds the default generator, the same as
    tl.manual_seed."""
    from . import random
    random.manual_seed(seed)


manual_seed_all = manual_seed     # one generator serves every device


def set_device(device) -> None:
    """Make `device` (an index, "cuda:i" or a Device) the current CUDA device."""
    from .backend import Device
    if not cuda_available():
        raise RuntimeError(f"cuda.set_device: {cuda_unavailable_reason()}")
    index = device if isinstance(device, int) else Device(device).index or 0
    get_cupy().cuda.Device(index).use()


def empty_cache() -> None:
    """Return the cached, unused GPU memory of CuPy's pool to the driver (no-op without
    CUDA)."""
    if cuda_available():
        get_cupy().get_default_memory_pool().free_all_blocks()


def _typed(name: str, dtype: str):
    from .tensor import _legacy_constructor
    return _legacy_constructor(dtype, name, device="cuda")


FloatTensor = _typed("FloatTensor", "float32")
DoubleTensor = _typed("DoubleTensor", "float64")
LongTensor = _typed("LongTensor", "int64")


class device:  # noqa: N801 - PyTorch's name
    """`with tl.cuda.device(i):` makes GPU i current inside the block (CuPy's Device)."""

    def __init__(self, index) -> None:
        from .backend import Device
        self.index = index if isinstance(index, int) else Device(index).index or 0

    def __enter__(self):
        if not cuda_available():
            raise RuntimeError(f"cuda.device: {cuda_unavailable_reason()}")
        self._ctx = get_cupy().cuda.Device(self.index)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)
