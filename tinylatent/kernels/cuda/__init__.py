"""The GPU backend of the fast kernels: CUDA C sources (kernels/cuda/*.cu) compiled once per
process by NVRTC through `cupy.RawModule`, plus cuBLAS GEMMs (cupy.matmul) for the
contractions. It implements KernelBackend (kernels/backend.py) on CuPy arrays, as
`kernels.numba` does on NumPy arrays, so the fast Functions in tinylatent/ops/ serve both.

This module imports without CuPy (it is imported lazily inside each call); `available()`
says whether it can run, and `tl.cuda.is_available()` / `tl.cuda.unavailable_reason()` say
why not.
"""
from __future__ import annotations

import functools
import os

import numpy as np

name = "cuda"
SOURCE_DIR = os.path.dirname(os.path.abspath(__file__))
SOURCES = ("conv.cu", "attention.cu", "coupling.cu", "contrastive.cu")
_THREADS = 256  # TL_BLOCK in common.cuh


def available() -> bool:
    from tinylatent.backend import cuda_available
    return cuda_available()


def _cp():
    from tinylatent.backend import get_cupy
    return get_cupy()


class _XP:
    """`xp` for the Functions: cupy, resolved on first attribute access."""

    def __getattr__(self, attr):
        return getattr(_cp(), attr)


xp = _XP()


@functools.lru_cache(maxsize=None)
def _module(source: str):
    cp = _cp()
    with open(os.path.join(SOURCE_DIR, source), encoding="utf-8") as f:
        code = f.read()
    return cp.RawModule(code=code, options=("--std=c++14", f"-I{SOURCE_DIR}"))


def _kernel(source: str, kname: str, dtype):
    sfx = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}[np.dtype(dtype)]
    return _module(source).get_function(f"{kname}_{sfx}")


def _grid(total: int) -> tuple:
    return (max(1, min((total + _THREADS - 1) // _THREADS, 65535)),)


def _i(v) -> np.int32:
    return np.int32(v)


_scratch_pool: dict = {}


def scratch(key: str, shape: tuple, dtype):
    k = (key, tuple(shape), np.dtype(dtype))
    buf = _scratch_pool.get(k)
    if buf is None:
        if len(_scratch_pool) > 32:
            _scratch_pool.clear()
        buf = _scratch_pool[k] = _cp().empty(shape, dtype)
    return buf


def c(a):
    return _cp().ascontiguousarray(a)


def matmul(a, b, out=None):
    return _cp().matmul(a, b, out=out)


# ---------------------------------------------------------------------- conv
def im2col(x, geom, bias_row: bool = False):
    """x (B, C, H, W) -> cols (C*kh*kw [+ 1 row of ones], B*Ho*Wo)."""
    kh, kw, sh, sw, ph, pw, dh, dw, ho, wo = geom
    x = c(x)
    bsz, c_in, h, w = x.shape
    cols = _cp().empty((c_in * kh * kw + int(bias_row), bsz * ho * wo), x.dtype)
    _kernel("conv.cu", "im2col", x.dtype)(
        _grid(cols.size), (_THREADS,),
        (x, cols, *map(_i, (bsz, c_in, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo,
                            int(bias_row)))))
    return cols


def col2im(cols, shape, geom):
    """cols (C*kh*kw, B*Ho*Wo) -> x (B, C, H, W), overlapping taps summed (a gather)."""
    kh, kw, sh, sw, ph, pw, dh, dw, ho, wo = geom
    x = _cp().empty(shape, cols.dtype)
    bsz, c_in, h, w = shape
    _kernel("conv.cu", "col2im", cols.dtype)(
        _grid(x.size), (_THREADS,),
        (c(cols), x, *map(_i, (bsz, c_in, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo))))
    return x


def batch_to_channel_major(y, key=None):
    """(B, C, ...) -> (C, B * prod(...)) contiguous (the layout of a GEMM operand)."""
    bsz, ch = y.shape[:2]
    y3 = y.reshape(bsz, ch, -1)
    shape = (ch, bsz, y3.shape[2])
    out = scratch(key, shape, y.dtype) if key else _cp().empty(shape, y.dtype)
    out[...] = y3.transpose(1, 0, 2)
    return out.reshape(ch, -1)


# ---------------------------------------------------------------------- attention
def masked_softmax(s, scale, keep, causal):
    n, tq, tk = s.shape
    has_keep = keep is not None
    _kernel("attention.cu", "masked_softmax", s.dtype)(
        (n * tq,), (_THREADS,),
        (s, s.dtype.type(scale), c(keep) if has_keep else s, _i(has_keep), _i(bool(causal)),
         _i(tq), _i(tk)))
    return s


def softmax_backward(p, dp, scale):
    tk = p.shape[-1]
    _kernel("attention.cu", "softmax_backward", p.dtype)(
        (p.size // tk,), (_THREADS,), (c(p), dp, p.dtype.type(scale), _i(tk)))
    return dp


# ---------------------------------------------------------------------- coupling
def coupling_forward(x, log_s, t, inverse):
    cp = _cp()
    bsz = x.shape[0]
    k = x.size // bsz
    out = cp.empty(x.shape, x.dtype)
    ld = cp.empty(bsz, x.dtype)
    _kernel("coupling.cu", "coupling_forward", x.dtype)(
        (bsz,), (_THREADS,), (c(x), c(log_s), c(t), _i(bool(inverse)), out, ld, _i(k)))
    return out, ld


def coupling_backward(g, out, log_s, t, inverse):
    cp = _cp()
    g_in, g_ls, g_t = (cp.empty(g.shape, g.dtype) for _ in range(3))
    _kernel("coupling.cu", "coupling_backward", g.dtype)(
        _grid(g.size), (_THREADS,),
        (c(g), c(out), c(log_s), c(t), _i(bool(inverse)), g_in, g_ls, g_t, np.int64(g.size)))
    return g_in, g_ls, g_t


# ---------------------------------------------------------------------- logsumexp / InfoNCE
def row_logsumexp(x2):
    """(lse, saved): lse per row, and what the backward needs (row max, row sum)."""
    x2 = c(x2)
    out, mx, tot = (_cp().empty(x2.shape[0], x2.dtype) for _ in range(3))
    _kernel("contrastive.cu", "row_logsumexp", x2.dtype)(
        (x2.shape[0],), (_THREADS,), (x2, out, mx, tot, _i(x2.shape[1])))
    return out, (mx, tot)


def row_logsumexp_backward(x2, saved, g):
    x2 = c(x2)
    gx = _cp().empty(x2.shape, x2.dtype)
    _kernel("contrastive.cu", "row_logsumexp_backward", x2.dtype)(
        _grid(x2.size), (_THREADS,),
        (x2, saved[0], saved[1], c(g), gx, _i(x2.shape[0]), _i(x2.shape[1])))
    return gx


def row_cross_entropy(s, inv_tau, shift, mask_diag):
    loss = _cp().empty(s.shape[0], s.dtype)
    _kernel("contrastive.cu", "row_cross_entropy", s.dtype)(
        (s.shape[0],), (_THREADS,),
        (s, s.dtype.type(inv_tau), _i(shift), _i(bool(mask_diag)), loss, _i(s.shape[1])))
    return loss


def cross_entropy_grad(p, g, inv_tau, shift, symmetric):
    out = scratch("ce_grad", p.shape, p.dtype)
    _kernel("contrastive.cu", "cross_entropy_grad", p.dtype)(
        _grid(p.size), (_THREADS,),
        (c(p), c(g), p.dtype.type(inv_tau), _i(shift), _i(bool(symmetric)), out,
         _i(p.shape[0]), _i(p.shape[1])))
    return out


def normalize_rows(z, eps=1e-12):
    cp = _cp()
    z = c(z)
    zn = cp.empty_like(z)
    norm = cp.empty(z.shape[0], z.dtype)
    _kernel("contrastive.cu", "normalize_rows", z.dtype)(
        (z.shape[0],), (_THREADS,), (z, zn, norm, z.dtype.type(eps), _i(z.shape[1])))
    return zn, norm


def normalize_rows_backward(gzn, zn, norm, eps=1e-12):
    gz = _cp().empty_like(zn)
    _kernel("contrastive.cu", "normalize_rows_backward", zn.dtype)(
        (zn.shape[0],), (_THREADS,),
        (c(gzn), zn, norm, zn.dtype.type(eps), gz, _i(zn.shape[1])))
    return gz
