"""Devices and array modules.

A Tensor holds one array: a `numpy.ndarray` on "cpu" or a `cupy.ndarray` on "cuda:N". Every
op reaches the array library through `xp` (numpy or cupy), never by name, so each op is
written once for both. CuPy is optional: it is imported only when a CUDA device is asked for,
so `import tinylatent` works (and stays fast) without it. Transfers are explicit
(`Tensor.to(device)`); ops on tensors of two devices raise an error naming both.
"""
from __future__ import annotations

import functools

import numpy as np

__all__ = ["Device", "device", "cuda_available", "get_cupy", "array_module_of_type",
           "array_module", "device_of_array"]


class Device:
    """A place arrays live: `Device("cpu")`, `Device("cuda")`, `Device("cuda:1")`."""

    __slots__ = ("type", "index")

    def __init__(self, spec: "str | Device" = "cpu"):
        if isinstance(spec, Device):
            self.type, self.index = spec.type, spec.index
            return
        if not isinstance(spec, str):
            raise TypeError(f"device: expected a string such as 'cpu' or 'cuda:0', got {spec!r}")
        kind, _, idx = spec.partition(":")
        if kind not in ("cpu", "cuda"):
            raise ValueError(f"device: unknown device {spec!r}; expected 'cpu', 'cuda' or "
                             "'cuda:N'")
        if kind == "cpu" and idx:
            raise ValueError(f"device: 'cpu' takes no index, got {spec!r}")
        self.type = kind
        self.index = int(idx) if idx else (0 if kind == "cuda" else None)

    @property
    def xp(self):
        return np if self.type == "cpu" else get_cupy(self)

    def __eq__(self, other) -> bool:
        try:
            other = Device(other)
        except (TypeError, ValueError):
            return NotImplemented
        return self.type == other.type and self.index == other.index

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __str__(self) -> str:
        return "cpu" if self.type == "cpu" else f"cuda:{self.index}"

    def __repr__(self) -> str:
        return f"device('{self}')"


def device(spec: "str | Device" = "cpu") -> Device:
    return Device(spec)


CPU = Device("cpu")


@functools.lru_cache(maxsize=None)
def _import_cupy():
    try:
        import cupy  # noqa: F401
    except Exception as e:  # ImportError, or a CUDA library that fails to load
        return None, f"CuPy is not importable ({type(e).__name__}: {e})"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:
        return None, f"CuPy found no usable CUDA device ({type(e).__name__}: {e})"
    if n == 0:
        return None, "CuPy found no CUDA device"
    return cupy, ""


def cuda_available() -> bool:
    return _import_cupy()[0] is not None


def cuda_unavailable_reason() -> str:
    return _import_cupy()[1]


def get_cupy(dev: Device | None = None):
    cp, why = _import_cupy()
    if cp is None:
        raise RuntimeError(f"device {dev or 'cuda'}: CUDA is not available: {why}. "
                           "Install the GPU extra (pip install -e .[gpu]) on a machine with "
                           "an NVIDIA GPU, or use device='cpu'")
    return cp


def array_module_of_type(atype):
    """numpy for numpy arrays, cupy for cupy arrays."""
    if issubclass(atype, (np.ndarray, np.generic)):
        return np
    cp = _import_cupy()[0]
    if cp is not None and issubclass(atype, cp.ndarray):
        return cp
    raise TypeError(f"unsupported array type {atype.__name__}")


def array_module(arr):
    return array_module_of_type(type(arr))


def device_of_array(arr) -> Device:
    if isinstance(arr, (np.ndarray, np.generic)):
        return CPU
    return Device(f"cuda:{arr.device.id}")
