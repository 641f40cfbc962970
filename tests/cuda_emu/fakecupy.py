"""A stand-in for the few CuPy calls `tinylatent/kernels/cuda/__init__.py` makes, to run the
project's CUDA sources on the CPU (see cuda_emu.h for the execution model).

    RawModule(code, options)   compiles `code` with g++ (cuda_emu.h force-included) into a
                               shared library, cached by the hash of everything that goes in
                               (source, header, flags, compiler), loaded with ctypes
    get_function(name)(grid, block, args)
                               checks the launch as CUDA and CuPy would reject it or as it
                               would silently go wrong: grid/block limits (0 blocks is an
                               error), the argument count, every pointer argument a C-contiguous
                               "device" array of the pointee's dtype on the current device,
                               every scalar of the exact width the kernel declares (a Python
                               int passed for `int` would be read as 8 bytes by CuPy)
    ndarray                    NumPy-backed "device" arrays that remember their device;
                               `empty` fills them with NaN (0xAB bytes for integers) so an
                               output a kernel forgot to write shows
    cuda.Device(i)             the current device (thread-local), as a context manager;
                               `cuda.runtime.getDeviceCount()` is DEVICE_COUNT (2 by default)

Everything else (dtypes, elementwise functions, concatenate, ...) is NumPy's, with array
results placed on the current device.

Environment: TINYLATENT_CUDA_EMU_SANITIZE=thread|address builds every module with that
sanitizer (the process must have the sanitizer runtime preloaded: scripts/cuda_sanitize.py);
TINYLATENT_CUDA_EMU_CACHE sets the compile cache directory (default: a tinylatent-cuda-emu
folder in the system temp directory).
"""
from __future__ import annotations

import collections
import ctypes
import hashlib
import os
import re
import shlex
import subprocess
import tempfile
import threading

import numpy as np

__all__ = ["ndarray", "RawModule", "cuda", "empty", "empty_like", "DEVICE_COUNT", "LAUNCHES",
           "LaunchError", "HEADER", "CXX"]

HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cuda_emu.h")
CXX = os.environ.get("CXX", "g++")
DEVICE_COUNT = 2
_SANITIZE = os.environ.get("TINYLATENT_CUDA_EMU_SANITIZE", "").strip()
MAX_BLOCK = (1024, 1024, 64)
MAX_GRID = (2 ** 31 - 1, 65535, 65535)


# Launches per kernel name in this process (tests check which kernels a call ran).
LAUNCHES: collections.Counter = collections.Counter()


class LaunchError(RuntimeError):
    """A launch CUDA would refuse (cudaErrorInvalidConfiguration, ...) or a kernel fault."""


# ---------------------------------------------------------------------- devices
class _Current(threading.local):
    device = 0


_current = _Current()


class Device:
    def __init__(self, device: "int | None" = None):
        self.id = _current.device if device is None else int(device)
        if not 0 <= self.id < DEVICE_COUNT:
            raise LaunchError(f"cudaErrorInvalidDevice: device {self.id} of {DEVICE_COUNT}")
        self._saved: list = []

    def use(self) -> None:
        _current.device = self.id

    def __enter__(self):
        self._saved.append(_current.device)
        _current.device = self.id
        return self

    def __exit__(self, *exc):
        _current.device = self._saved.pop()

    def synchronize(self) -> None:  # launches run to completion: nothing is queued
        pass

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return f"<CUDA Device {self.id}>"


class _Runtime:
    @staticmethod
    def getDeviceCount() -> int:
        return DEVICE_COUNT

    @staticmethod
    def getDeviceProperties(index: int) -> dict:
        return {"name": b"cuda_emu (CPU threads)", "maxThreadsPerBlock": 1024}


class _CudaNamespace:
    Device = Device
    runtime = _Runtime()


cuda = _CudaNamespace()


# ---------------------------------------------------------------------- arrays
class ndarray(np.ndarray):
    """A NumPy array standing for device memory on `device.id`."""

    def __array_finalize__(self, obj):
        self.device_id = getattr(obj, "device_id", _current.device)

    @property
    def device(self) -> Device:
        return Device(self.device_id)

    def __array_function__(self, func, types, args, kwargs):
        # NumPy functions given a device array return device arrays, as CuPy's do
        # (np.broadcast_to and friends would otherwise hand back host arrays).
        out = super().__array_function__(func, types, args, kwargs)
        if isinstance(out, tuple):
            return tuple(self._adopt(o) for o in out)
        return self._adopt(out)

    def _adopt(self, a):
        if isinstance(a, np.ndarray) and not isinstance(a, ndarray):
            a = a.view(ndarray)
            a.device_id = self.device_id
        return a

    def get(self) -> np.ndarray:
        return np.array(self, copy=True).view(np.ndarray)

    def __matmul__(self, other):
        return matmul(self, other)


def _on_device(a):
    """Results of NumPy calls placed on the current device (a view, no copy)."""
    if isinstance(a, np.ndarray) and not isinstance(a, ndarray):
        a = a.view(ndarray)
        a.device_id = _current.device
    return a


def _poison(a: np.ndarray) -> np.ndarray:
    if a.dtype.kind in "fc" or a.dtype.name == "bfloat16":
        a.fill(np.nan)
    elif a.size:
        a.view(np.uint8).fill(0xAB)
    return a


def empty(shape, dtype=np.float64, order="C") -> ndarray:
    return _poison(_on_device(np.empty(shape, dtype, order)))


def empty_like(a, dtype=None) -> ndarray:
    return empty(a.shape, a.dtype if dtype is None else dtype)


def asarray(a, dtype=None) -> ndarray:
    if isinstance(a, ndarray) and (dtype is None or a.dtype == dtype):
        return a
    return _on_device(np.array(a, dtype=dtype, copy=True))


def ascontiguousarray(a, dtype=None) -> ndarray:
    if isinstance(a, ndarray) and a.flags.c_contiguous and (dtype is None or a.dtype == dtype):
        return a
    return _on_device(np.array(a, dtype=dtype, copy=True, order="C"))


def matmul(a, b, out=None):
    """CuPy's matmul: bfloat16 operands give a bfloat16 product (cuBLAS accumulates in
    float32 and rounds once), where NumPy with ml_dtypes returns the float32 one."""
    r = np.matmul(a, b)
    if r.dtype != a.dtype and a.dtype.name == "bfloat16":
        r = r.astype(a.dtype)
    if out is None:
        return _on_device(r)
    out[...] = r
    return out


def __getattr__(attr):
    target = getattr(np, attr)
    if not callable(target) or isinstance(target, type):
        return target

    def call(*args, **kwargs):
        out = target(*args, **kwargs)
        if isinstance(out, tuple):
            return tuple(_on_device(o) for o in out)
        return _on_device(out)
    call.__name__ = attr
    return call


# ---------------------------------------------------------------------- kernels
_KERNEL_RE = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\)', re.S)
_SCALARS = {  # C type -> (ctypes type, numpy dtype, the Python type CuPy passes as it)
    "int": (ctypes.c_int32, np.dtype(np.int32), None),
    "unsigned int": (ctypes.c_uint32, np.dtype(np.uint32), None),
    "long long": (ctypes.c_int64, np.dtype(np.int64), int),
    "float": (ctypes.c_float, np.dtype(np.float32), None),
    "double": (ctypes.c_double, np.dtype(np.float64), float),
    "bool": (ctypes.c_bool, np.dtype(np.bool_), bool),
}
_POINTEES = {"float": np.float32, "double": np.float64, "unsigned char": np.uint8,
             "int": np.int32, "long long": np.int64, "unsigned short": np.uint16,
             "__half": np.float16, "half": np.float16, "tl_half": np.float16,
             "__nv_bfloat16": np.uint16}
try:   # tl_bf16 holds the bits of ml_dtypes' bfloat16, the dtype of CuPy's bfloat16 arrays
    import ml_dtypes
    _POINTEES["tl_bf16"] = ml_dtypes.bfloat16
except ImportError:   # no bfloat16 arrays can exist, so no launch can pass one
    pass


def _parse_param(text: str) -> tuple:
    """'const float* __restrict__ x' -> (name, base C type, is_pointer)."""
    t = text.replace("__restrict__", " ").replace("const", " ")
    pointer = "*" in t
    words = t.replace("*", " ").split()
    return words[-1], " ".join(words[:-1]), pointer


def kernel_signatures(code: str, include_dirs: list, defines: list) -> dict:
    """{kernel name: [(param name, C type, is_pointer)]} from the preprocessed source
    (macros expanded, so kernels stamped out per dtype by a macro are seen)."""
    cmd = [CXX, "-E", "-P", "-x", "c++", "-std=c++20", "-D__global__=__global__", "-"]
    cmd += [f"-I{d}" for d in include_dirs] + [f"-D{d}" for d in defines]
    pre = subprocess.run(cmd, input=code, capture_output=True, text=True)
    if pre.returncode:
        raise LaunchError(f"preprocessing failed:\n{pre.stderr}")
    sigs = {}
    for name, params in _KERNEL_RE.findall(pre.stdout):
        sigs[name] = [_parse_param(p) for p in params.split(",") if p.strip()]
    return sigs


def _launcher_source(sigs: dict) -> str:
    lines = ['#include <cstring>']
    for name, params in sigs.items():
        casts = []
        for i, (_, ctype, pointer) in enumerate(params):
            full = f"{ctype}*" if pointer else ctype
            casts.append(f"*({full}*)args[{i}]")
        lines.append(
            f'extern "C" __attribute__((visibility("default"))) int tlemu_launch_{name}('
            f'unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, '
            f'void** args, char* err, int errlen) {{\n'
            f'    std::string e = tlemu::launch(dim3(gx, gy, gz), dim3(bx, by, bz), [&] {{ '
            f'{name}({", ".join(casts)}); }});\n'
            f'    std::strncpy(err, e.c_str(), errlen - 1);\n'
            f'    return e.empty() ? 0 : 1;\n}}')
    return "\n".join(lines) + "\n"


def cache_dir() -> str:
    d = os.environ.get("TINYLATENT_CUDA_EMU_CACHE") or os.path.join(
        tempfile.gettempdir(), "tinylatent-cuda-emu")
    os.makedirs(d, exist_ok=True)
    return d


def _compiler_flags() -> list:
    # -O0: the emulated kernels' speed is bound by thread switches, not by their code, and
    # -O0 halves the compile time; sanitizer builds use -O1 -g as the sanitizers advise.
    # Hidden visibility: each module keeps its own `__shared__` statics. Default-visibility
    # inline/template statics are process-wide STB_GNU_UNIQUE symbols, so two builds of one
    # source (two block sizes) would share one buffer sized for the first.
    flags = ["-std=c++20", "-fPIC", "-shared", "-pthread", "-x", "c++", "-ffp-contract=off",
             "-fvisibility=hidden", "-fvisibility-inlines-hidden"]
    if _SANITIZE:
        flags += ["-O1", "-g", f"-fsanitize={_SANITIZE}", "-fno-omit-frame-pointer"]
    else:
        flags += ["-O0"]
    return flags


_build_lock = threading.Lock()


def compile_module(code: str, options) -> tuple:
    """(ctypes library, signatures): g++ on the source with the emulation header."""
    include_dirs = [o[2:] for o in options if o.startswith("-I")]
    defines = [o[2:] for o in options if o.startswith("-D")]
    sigs = kernel_signatures(code, include_dirs, defines)
    if not sigs:
        raise LaunchError("no extern \"C\" __global__ kernel found in the source")
    with open(HEADER, encoding="utf-8") as f:
        header = f.read()
    unit = code + "\n// ---- launchers generated by fakecupy\n" + _launcher_source(sigs)
    flags = _compiler_flags() + [f"-I{d}" for d in include_dirs] + [f"-D{d}" for d in defines]
    headers = "".join(open(os.path.join(d, f), encoding="utf-8").read()
                      for d in include_dirs if os.path.isdir(d)
                      for f in sorted(os.listdir(d)) if f.endswith((".cuh", ".h")))
    key = hashlib.sha256("\0".join([unit, header, headers, CXX, *flags]).encode()).hexdigest()
    lib_path = os.path.join(cache_dir(), f"{key[:24]}.so")
    with _build_lock:
        if not os.path.exists(lib_path):
            src = os.path.join(cache_dir(), f"{key[:24]}.cu")
            with open(src, "w", encoding="utf-8") as f:
                f.write(unit)
            tmp = f"{lib_path}.{os.getpid()}.tmp"
            cmd = [CXX, *flags, "-include", HEADER, src, "-o", tmp]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                raise LaunchError(f"g++ failed ({shlex.join(cmd)}):\n{out.stderr[-4000:]}")
            os.replace(tmp, lib_path)  # atomic: a parallel build never loads half a file
    return ctypes.CDLL(lib_path), sigs


class RawModule:
    def __init__(self, code: str, options=(), **unused):
        self.options = tuple(options)
        self._lib, self.signatures = compile_module(code, self.options)

    def get_function(self, name: str) -> "Function":
        if name not in self.signatures:
            raise LaunchError(f"CUDA_ERROR_NOT_FOUND: no kernel {name!r} in the module "
                              f"(has {sorted(self.signatures)})")
        return Function(name, self.signatures[name], getattr(self._lib, f"tlemu_launch_{name}"))


def _dims(what: str, kernel: str, v, limits) -> tuple:
    if isinstance(v, (int, np.integer)):
        v = (v,)
    v = tuple(v)
    if not 1 <= len(v) <= 3 or not all(isinstance(d, (int, np.integer)) for d in v):
        raise LaunchError(f"{kernel}: {what} must be 1 to 3 integers, got {v!r}")
    v = tuple(int(d) for d in v) + (1,) * (3 - len(v))
    for d, lim in zip(v, limits):
        if not 1 <= d <= lim:
            raise LaunchError(f"{kernel}: cudaErrorInvalidConfiguration: {what} {v} outside "
                              f"[1, {lim}] (a grid of 0 blocks is an error in CUDA)")
    return v


class Function:
    """One kernel; calling it launches it as `kernel(grid, block, args)`."""

    def __init__(self, name: str, params: list, launcher):
        self.name, self.params, self._launcher = name, params, launcher
        launcher.restype = ctypes.c_int

    def _arg(self, i: int, a, keep: list):
        pname, ctype, pointer = self.params[i]
        where = f"{self.name}: argument {i} ({ctype}{'*' if pointer else ''} {pname})"
        if pointer:
            if not isinstance(a, ndarray):
                raise LaunchError(f"{where}: expected a device array, got "
                                  f"{type(a).__name__} (a host pointer faults on a GPU)")
            want = np.dtype(_POINTEES[ctype])
            if a.dtype != want:
                raise LaunchError(f"{where}: array of dtype {a.dtype}, kernel reads {want}")
            if not a.flags.c_contiguous:
                raise LaunchError(f"{where}: array of shape {a.shape} strides {a.strides} is "
                                  "not C-contiguous (the kernel indexes it densely)")
            if a.device_id != _current.device:
                raise LaunchError(f"{where}: array on device {a.device_id}, launch on "
                                  f"device {_current.device} (cudaErrorIllegalAddress)")
            p = ctypes.c_void_p(a.ctypes.data)
        else:
            ct, dt, pytype = _SCALARS[ctype]
            if isinstance(a, np.generic):
                if a.dtype != dt:
                    raise LaunchError(f"{where}: scalar of dtype {a.dtype}, kernel takes {dt}")
            elif pytype is None or type(a) is not pytype:
                raise LaunchError(f"{where}: Python {type(a).__name__} {a!r}: CuPy passes it "
                                  f"as a 64-bit value; pass numpy.{dt.name}")
            p = ct(a.item() if isinstance(a, np.generic) else a)
        keep.append(p)
        return ctypes.cast(ctypes.pointer(p), ctypes.c_void_p)

    def __call__(self, grid, block, args, shared_mem: int = 0, stream=None):
        g = _dims("grid", self.name, grid, MAX_GRID)
        b = _dims("block", self.name, block, MAX_BLOCK)
        if b[0] * b[1] * b[2] > 1024:
            raise LaunchError(f"{self.name}: cudaErrorInvalidConfiguration: block {b} has "
                              "more than 1024 threads")
        args = tuple(args)
        if len(args) != len(self.params):
            raise LaunchError(f"{self.name}: {len(args)} arguments for "
                              f"{len(self.params)} parameters")
        keep: list = []
        argv = (ctypes.c_void_p * max(1, len(args)))(
            *[self._arg(i, a, keep) for i, a in enumerate(args)])
        err = ctypes.create_string_buffer(512)
        rc = self._launcher(*(ctypes.c_uint(d) for d in g + b), argv, err, ctypes.c_int(512))
        LAUNCHES[self.name] += 1
        if rc:
            raise LaunchError(f"{self.name}: {err.value.decode()}")
