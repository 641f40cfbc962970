"""Which kernel backend runs a hot op: the one switch. It only picks a backend; each hot op's
module in tinylatent/ops/ decides whether its fast path applies to the arguments
(tinylatent.ops.fast.fast_backend), and nothing here imports tinylatent.ops.

    backend_for(tensor) -> the Numba backend for NumPy arrays, the CUDA backend for CuPy
                           arrays (tinylatent.kernels.backend.KernelBackend), or None

The reference runs (the caller gets None) when
  * the environment variable TINYLATENT_KERNELS is "reference" (read on every call, so it
    can be flipped at run time), or inside `with kernels.use_reference():`;
  * Numba is not installed (CPU) or CuPy is not (GPU): one RuntimeWarning says so.
Numba installed but unable to cache compiled kernels (a read-only install with an
unwritable HOME, another user's site-packages): the kernels are cached in a temporary
directory for this process instead, and one RuntimeWarning says so. Any other error while
loading a backend (a broken Numba, a kernel that fails to compile) is raised, not hidden.
Importing this module is cheap: Numba and CuPy are imported on the first fast call.
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import os
import sys
import tempfile
import threading
import warnings

import numpy as np

from .backend import check_backend

__all__ = ["use_reference", "reference_forced", "backend_for", "ENV_VAR", "numba_available",
           "load_numba_module"]

ENV_VAR = "TINYLATENT_KERNELS"


class _Switch(threading.local):
    depth = 0


_switch = _Switch()


@contextlib.contextmanager
def use_reference():
    """Run every hot op through its reference implementation inside this block."""
    _switch.depth += 1
    try:
        yield
    finally:
        _switch.depth -= 1


def reference_forced() -> bool:
    if _switch.depth > 0:
        return True
    mode = os.environ.get(ENV_VAR, "auto").strip().lower()
    if mode in ("", "auto", "fast", "kernels"):
        return False
    if mode == "reference":
        return True
    raise ValueError(f"{ENV_VAR}={mode!r}: expected 'auto' (fast kernels where available) "
                     "or 'reference'")


# ---------------------------------------------------------------------- loading backends
_warned: set = set()


def _warn_once(key: str, message: str) -> None:
    """One warning per process and cause, whatever the warning filters say."""
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _is_missing(exc: ImportError, package: str) -> bool:
    """Whether exc says `package` itself is not installed (not that it is broken)."""
    name = exc.name or ""
    return name == package or name.startswith(package + ".")


def _cache_unwritable(exc: RuntimeError) -> bool:
    # Numba's wording when no cache locator can write (numba/core/caching.py)
    return "cannot cache function" in str(exc)


def _forget(module_name: str) -> None:
    """Drop a half-imported module (and its submodules) so it can be imported again."""
    for name in [n for n in sys.modules if n == module_name or
                 n.startswith(module_name + ".")]:
        del sys.modules[name]


def load_numba_module(module_name: str):
    """Import a module of Numba kernels (`@njit(cache=True)` functions), or return None when
    Numba is not installed (warning once). If Numba cannot cache next to the sources nor in
    the user's cache directory, cache in a temporary directory instead (warning once)."""
    try:
        import numba  # noqa: F401
    except ImportError as exc:
        if not _is_missing(exc, "numba"):
            raise
        _warn_once("numba-missing", f"tinylatent: Numba is not installed ({exc}); the hot ops "
                   "(conv2d, attention, coupling, logsumexp, contrastive losses) and Adam run "
                   "their NumPy reference implementations, which are slower. Install numba "
                   "for the fast kernels.")
        return None
    try:
        return importlib.import_module(module_name)
    except RuntimeError as exc:
        if not _cache_unwritable(exc):
            raise
        reason = str(exc)
        _forget(module_name)
    import numba.core.config as numba_config
    cache_dir = tempfile.mkdtemp(prefix="tinylatent-numba-")
    numba_config.CACHE_DIR = cache_dir
    _warn_once("numba-cache", f"tinylatent: Numba cannot write its cache ({reason}); compiled "
               f"kernels are cached in {cache_dir} for this process only (each new process "
               "compiles them again). Set NUMBA_CACHE_DIR to a writable directory to keep "
               "them.")
    return importlib.import_module(module_name)


@functools.lru_cache(maxsize=None)
def _numba_backend():
    backend = load_numba_module(__package__ + ".numba")
    if backend is not None:
        check_backend(backend)
    return backend


def numba_available() -> bool:
    return _numba_backend() is not None


def _cupy_cache_dir_unwritable() -> bool:
    path = os.environ.get("CUPY_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cupy",
                                                            "kernel_cache")
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError:
        return True
    return False


def _prepare_cupy_cache() -> None:
    """CuPy caches compiled kernels in CUPY_CACHE_DIR (default ~/.cupy/kernel_cache) and
    fails to compile when it cannot write there: use a temporary directory instead."""
    if _cupy_cache_dir_unwritable():
        cache_dir = tempfile.mkdtemp(prefix="tinylatent-cupy-")
        os.environ["CUPY_CACHE_DIR"] = cache_dir
        _warn_once("cupy-cache", "tinylatent: CuPy cannot write its kernel cache; compiled "
                   f"CUDA kernels are cached in {cache_dir} for this process only. Set "
                   "CUPY_CACHE_DIR to a writable directory to keep them.")


@functools.lru_cache(maxsize=None)
def _cuda_backend():
    try:
        import cupy  # noqa: F401
    except ImportError as exc:
        if not _is_missing(exc, "cupy"):
            raise
        _warn_once("cupy-missing", f"tinylatent: CuPy is not installed ({exc}); the hot ops "
                   "run their reference implementations on GPU arrays.")
        return None
    from . import cuda as backend
    if not backend.available():
        return None
    check_backend(backend)
    _prepare_cupy_cache()
    return backend


def backend_for(x):
    """The kernel backend for a tensor's arrays, or None."""
    data = x.array
    if type(data) is np.ndarray:
        return _numba_backend()
    if hasattr(data, "__cuda_array_interface__"):
        return _cuda_backend()
    return None
