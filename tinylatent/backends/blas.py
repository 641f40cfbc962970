"""NumPy's BLAS on the CPU: which OpenBLAS kernels this process runs.

Every Linear layer, im2col convolution and attention product of tinylatent is a NumPy matmul,
so on the CPU the models run at the speed of NumPy's BLAS, OpenBLAS in NumPy's wheels. Built
with DYNAMIC_ARCH, OpenBLAS picks its kernels when it loads, from the CPU model, unless the
environment variable OPENBLAS_CORETYPE names them. That choice can halve the speed of every
model: on a 2-core AMD EPYC (family 26) with AVX-512 whose environment sets
OPENBLAS_CORETYPE=Haswell, float32 GEMM (64, 288) @ (288, 25088) ran at 35 GFLOP/s on one core
with those AVX2 kernels and at 65 with the SkylakeX (AVX-512) kernels OpenBLAS picks there by
itself. tinylatent does not override the environment; `blas_info()` says what runs, and the
benchmark reports print it next to their ratios.
"""
from __future__ import annotations

import ctypes
import os

__all__ = ["blas_info", "describe"]

_CORENAME_SYMBOLS = ("openblas_get_corename", "openblas_get_corename64_",
                     "scipy_openblas_get_corename64_", "scipy_openblas_get_corename")


def _loaded_openblas() -> list:
    """Paths of the OpenBLAS shared libraries this process has loaded (Linux; [] elsewhere)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            paths = {line.split(None, 5)[5].strip() for line in f if len(line.split()) >= 6}
    except OSError:
        return []
    return sorted(p for p in paths if "openblas" in os.path.basename(p).lower()
                  and ".so" in os.path.basename(p))


def _cpu_has_avx512() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return False
    return {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= set(flags.split())


def blas_info() -> dict:
    """{"openblas": [(path, kernel set)], "OPENBLAS_CORETYPE": value or None, "cpu_avx512":
    bool} for the OpenBLAS libraries loaded now (NumPy's, after `import numpy`)."""
    import numpy  # noqa: F401  (loads NumPy's OpenBLAS, so that it is found below)
    found = []
    for path in _loaded_openblas():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in _CORENAME_SYMBOLS:
            fn = getattr(lib, symbol, None)
            if fn is not None:
                fn.restype = ctypes.c_char_p
                found.append((path, fn().decode()))
                break
    return {"openblas": found, "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "cpu_avx512": _cpu_has_avx512()}


def describe() -> str:
    """One line for reports: the kernel set(s), and why, e.g. "OpenBLAS Haswell kernels
    (OPENBLAS_CORETYPE=Haswell in the environment; the CPU has AVX-512)"."""
    info = blas_info()
    cores = sorted({core for _, core in info["openblas"]})
    if not cores:
        return "BLAS: not OpenBLAS, or its kernel set cannot be queried"
    why = []
    if info["OPENBLAS_CORETYPE"]:
        why.append(f"OPENBLAS_CORETYPE={info['OPENBLAS_CORETYPE']} in the environment")
    why.append("the CPU has AVX-512" if info["cpu_avx512"] else "the CPU has no AVX-512")
    return f"OpenBLAS {' / '.join(cores)} kernels ({'; '.join(why)})"
