"""glibc's malloc on the CPU: keep freed large blocks for the next step instead of returning
them to the kernel.

NumPy allocates every op's result with malloc. glibc serves a block above its mmap
threshold with its own mmap and unmaps it on free; the threshold starts at 128 KB and rises
on each such free up to 32 MB, and the heap's free top is given back once more than a trim
threshold (twice the mmap threshold) is free there. A training step allocates and frees the
same large temporaries every step, so with these defaults part of them is unmapped or
trimmed and faulted in again the next step: the kernel maps and zeroes every 4 KB page
again. Three 16 MB arrays freed together each step (a GELU step's output, derivative and
gradient) re-faulted 6 MB a step (tests/test_malloc.py); the exact GELU forward and backward
on (8192, 512) float32 took 11.3 ms with glibc's defaults and 5.7 ms with the policy below,
each in a fresh process (2-core AMD EPYC, one thread).

So at import tinylatent fixes the mmap threshold at glibc's ceiling (32 MB: larger blocks,
such as a conv layer's chunked im2col columns, go through reused scratch buffers instead)
and raises the trim threshold to 1 GB: freed blocks stay in the heap and the next step's
allocations reuse them. The cost is that the process's resident memory no longer falls after
a peak (up to 1 GB of free heap is kept), as with PyTorch's caching allocator on the GPU.
It applies to the whole process (PyTorch's CPU tensors in the same process included).

Not applied when TINYLATENT_MALLOC=system, when the environment already sets one of glibc's
malloc variables (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_, MALLOC_TOP_PAD_, or a
glibc.malloc tunable in GLIBC_TUNABLES: the user's choice wins), or off glibc.
`malloc_info()` says what is in effect.
"""
from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["malloc_info", "retain_freed_memory"]

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3          # glibc's malloc.h
MMAP_THRESHOLD = 32 * 2 ** 20                        # glibc's ceiling on 64-bit (HEAP_MAX / 2)
TRIM_THRESHOLD = 2 ** 30
_USER_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")

_state = {"policy": "not applied", "reason": "not yet configured"}


def _glibc():
    """The C library if it is glibc (it has mallopt and gnu_get_libc_version), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()
        libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        return libc
    except (OSError, AttributeError):
        return None


def retain_freed_memory() -> dict:
    """Apply the policy above (once a process is enough; again is harmless) unless
    TINYLATENT_MALLOC=system or the environment sets glibc's malloc variables; returns
    malloc_info()."""
    choice = os.environ.get("TINYLATENT_MALLOC", "retain")
    if choice not in ("retain", "system"):
        raise ValueError(f"TINYLATENT_MALLOC must be 'retain' or 'system', got {choice!r}")
    user = [v for v in _USER_VARIABLES if v in os.environ]
    if "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        user.append("GLIBC_TUNABLES")
    if choice == "system":
        _state.update(policy="glibc defaults", reason="TINYLATENT_MALLOC=system")
        return malloc_info()
    if user:
        _state.update(policy="the environment's", reason=f"{', '.join(user)} set")
        return malloc_info()
    libc = _glibc()                  # loaded only when the policy is to be applied
    if libc is None:
        _state.update(policy="not applied", reason="the C library is not glibc")
        return malloc_info()
    refused = [name for name, option, value in
               (("mmap", M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                ("trim", M_TRIM_THRESHOLD, TRIM_THRESHOLD))
               if libc.mallopt(option, value) != 1]
    if refused:   # a threshold glibc took stays set: say which one it refused
        _state.update(policy="not applied" if len(refused) == 2 else "partly applied",
                      reason=f"mallopt refused the {' and '.join(refused)} threshold")
    else:
        _state.update(policy="retain",
                      reason=f"mmap threshold {MMAP_THRESHOLD >> 20} MB, trim threshold "
                             f"{TRIM_THRESHOLD >> 20} MB")
    return malloc_info()


def malloc_info() -> dict:
    """{"policy": "retain" | "glibc defaults" | "the environment's" | "partly applied" |
    "not applied", "reason": why}."""
    return dict(_state)
