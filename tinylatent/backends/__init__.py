"""`tl.backends.cudnn` (PyTorch's `torch.backends.cudnn`): accepted so that ported code which
sets `cudnn.benchmark = True` or `cudnn.deterministic = True` runs. tinylatent does not call
cuDNN (its GPU convolutions are its own CUDA kernels, always deterministic), so the flags
change nothing; `cudnn.is_available()` says so by answering False.

`tl.backends.blas_info()`: which OpenBLAS kernels NumPy's matmuls run on this CPU, and whether
the environment chose them (tinylatent/backends/blas.py).

`tl.backends.malloc_info()`: whether glibc keeps freed large blocks for reuse, the policy
`import tinylatent` sets unless TINYLATENT_MALLOC=system (tinylatent/backends/malloc.py)."""
from __future__ import annotations

from types import SimpleNamespace

from .blas import blas_info
from .malloc import malloc_info

__all__ = ["cudnn", "mps", "blas_info", "malloc_info"]


def _cudnn_is_available() -> bool:
    return False


cudnn = SimpleNamespace(benchmark=False, deterministic=False, enabled=False,
                        is_available=_cudnn_is_available)


def _false() -> bool:
    return False


# Apple's Metal backend (torch.backends.mps): tinylatent has none, so both queries say False
mps = SimpleNamespace(is_available=_false, is_built=_false)
