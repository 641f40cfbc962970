"""Run tinylatent's CUDA kernels (the real tinylatent/kernels/cuda/*.cu, through the real
launch code in tinylatent/kernels/cuda/__init__.py) on the CPU, without a GPU or CuPy.

    cuda_emu.h    the CUDA execution model on OS threads (force-included by g++)
    fakecupy.py   a stand-in for the CuPy calls the launch code makes (RawModule via g++ and
                  ctypes, checked launches, NaN-filled "device" arrays, devices)

    with emulated(block=64) as cuda:     # tinylatent.kernels.cuda, on the stand-in
        x = to_device(np.ones((3, 5)))
        lse, saved = cuda.row_logsumexp(x)

The CUDA backend module is found through `BACKEND` below: the one line to change when the
kernels package moves.
"""
from __future__ import annotations

import contextlib
import importlib
import shutil

import numpy as np

from . import fakecupy

__all__ = ["BACKEND", "backend", "emulated", "to_device", "to_host", "compiler_missing",
           "fakecupy"]

BACKEND = "tinylatent.kernels.cuda"


def backend():
    """The CUDA backend module (tinylatent/kernels/cuda/__init__.py)."""
    return importlib.import_module(BACKEND)


def compiler_missing() -> str:
    """Why the emulation cannot run here ('' when it can)."""
    if shutil.which(fakecupy.CXX) is None:
        return f"{fakecupy.CXX} not found: the CUDA emulation needs g++ >= 11 (C++20)"
    return ""


@contextlib.contextmanager
def emulated(block: "int | None" = None, device_count: int = 2):
    """The CUDA backend running on the stand-in, with `block` threads per block (default:
    the backend's own BLOCK) and `device_count` emulated devices. Inside, a hot op called
    on tensors holding stand-in device arrays (to_device) takes its fast path on the CUDA
    kernels, as it would on CuPy arrays."""
    import tinylatent.backend as tb
    from tinylatent.kernels import dispatch
    be = backend()
    boundary = HostBoundary(be)
    host_backend_for = dispatch.backend_for

    def backend_for(x):
        # tensors holding stand-in device arrays get the CUDA backend, as CuPy arrays do
        return boundary if isinstance(x.array, fakecupy.ndarray) else host_backend_for(x)
    dispatch.backend_for = backend_for
    saved = (be._cp, be.BLOCK, fakecupy.DEVICE_COUNT, fakecupy._current.device)
    host_module_of_type = tb.array_module_of_type

    def array_module_of_type(atype):
        # tensor ops on stand-in device arrays get the stand-in as their `xp`, as tensors
        # on a GPU get cupy: their new arrays stay on the device
        return fakecupy if issubclass(atype, fakecupy.ndarray) else host_module_of_type(atype)
    tb.array_module_of_type = array_module_of_type
    be._cp = lambda: fakecupy
    if block is not None:
        be.BLOCK = block
    fakecupy.DEVICE_COUNT = device_count
    fakecupy._current.device = 0
    be._module.cache_clear()
    be._pool.buffers = {}
    try:
        yield be
    finally:
        be._cp, be.BLOCK, fakecupy.DEVICE_COUNT, fakecupy._current.device = saved
        tb.array_module_of_type = host_module_of_type
        dispatch.backend_for = host_backend_for
        be._module.cache_clear()
        be._pool.buffers = {}


def to_device(a, device: int = 0) -> "fakecupy.ndarray":
    """A copy of the host array `a` on emulated device `device`."""
    with fakecupy.cuda.Device(device):
        return fakecupy.ascontiguousarray(np.asarray(a))


def to_host(a) -> np.ndarray:
    return np.array(a, copy=True).view(np.ndarray)


class HostBoundary:
    """The backend as the autograd Functions see it, with one emulation artefact undone.

    On a GPU every array the Functions hand the backend is a CuPy array, because the tensor
    ops around them run on CuPy. Here those tensor ops run on NumPy (a stand-in device array
    is a NumPy subclass), so some arrays arrive as plain host arrays (an upstream gradient the
    engine created, a dropout mask): this moves them to the device of the call's first
    device array before the backend sees them, as the GPU run would have them. Kernel
    launches themselves stay strict (fakecupy rejects a host array)."""

    def __init__(self, be):
        self._be = be

    def __getattr__(self, attr):
        target = getattr(self._be, attr)
        if not callable(target) or attr in ("xp",):
            return target

        def call(*args, **kwargs):
            dev = next((a.device_id for a in args if isinstance(a, fakecupy.ndarray)),
                       fakecupy._current.device)
            return target(*(_moved(a, dev) for a in args),
                          **{k: _moved(v, dev) for k, v in kwargs.items()})
        return call


def _moved(a, dev: int):
    if isinstance(a, tuple):
        return tuple(_moved(v, dev) for v in a)
    if isinstance(a, np.ndarray) and not isinstance(a, fakecupy.ndarray):
        return to_device(a, dev)
    return a
