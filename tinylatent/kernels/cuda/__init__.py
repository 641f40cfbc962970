"""The GPU backend of the fast kernels: CUDA C sources (kernels/cuda/*.cu) compiled once per
process by NVRTC through `cupy.RawModule`, plus cuBLAS GEMMs (cupy.matmul) for the
contractions. It implements KernelBackend (kernels/backend.py) on CuPy arrays, as
`kernels.numba` does on NumPy arrays, so the fast Functions in tinylatent/ops/ serve both.

This module imports without CuPy (it is imported lazily inside each call); `available()`
says whether it can run, and `tl.cuda.is_available()` / `tl.cuda.unavailable_reason()` say
why not.

Every function here runs on the device of its first array argument (entered around the
allocations and launches, so a `cuda:1` tensor never runs or allocates on the current
device), and an empty launch (a zero-sized input) launches nothing: CUDA rejects a grid of
0 blocks, and the reference returns an empty result.
"""
from __future__ import annotations

import functools
import math
import os
import threading

import numpy as np

from ..backend import checked_out

name = "cuda"
SOURCE_DIR = os.path.dirname(os.path.abspath(__file__))
# Threads per block of every kernel: the one definition, handed to the compiler as
# -DTL_BLOCK (common.cuh sizes its shared buffers and reduction trees by it). A power of two
# from 32 to 1024.
BLOCK = 256
# The ops whose kernels also take the 16-bit floats, float16 and bfloat16 (storage; float
# arithmetic inside, one rounding per output): such a tensor of any other op runs that op's
# reference.
half_ops = frozenset({"gelu", "layer_norm", "attention",   # attention: flash and masked
                      "conv",                                # conv: im2col + cuBLAS
                      "logsumexp", "info_nce", "nt_xent", "coupling", "embedding", "lstm"})


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


def compile_options(block: int) -> tuple:
    return ("--std=c++14", f"-I{SOURCE_DIR}", f"-DTL_BLOCK={block}")


@functools.lru_cache(maxsize=None)
def _module(source: str, block: int, device_id: int):
    # A module is loaded into one device's context: one per device (and block size).
    cp = _cp()
    with open(os.path.join(SOURCE_DIR, source), encoding="utf-8") as f:
        code = f.read()
    return cp.RawModule(code=code, options=compile_options(block))


def _launch(source: str, kname: str, dtype, grid: tuple, args: tuple) -> None:
    """Launch `kname` for `dtype` on the current device with BLOCK threads a block; a grid
    with 0 blocks (an empty input) is not launched."""
    if min(grid) == 0:
        return
    dtype = np.dtype(dtype)
    sfx = "bf16" if dtype.name == "bfloat16" else {np.dtype(np.float32): "f32",
                                                   np.dtype(np.float64): "f64",
                                                   np.dtype(np.float16): "f16"}[dtype]
    cp = _cp()
    kernel = _module(source, BLOCK, cp.cuda.Device().id).get_function(f"{kname}_{sfx}")
    kernel(grid, (BLOCK,), args)


def _compute_dtype(dtype) -> np.dtype:
    """The kernels' arithmetic type for a storage dtype: float32 for the 16-bit floats
    (tl_half, tl_bf16)."""
    dtype = np.dtype(dtype)
    return np.dtype(np.float32) if dtype.itemsize == 2 else dtype


def _grid(total: int) -> tuple:
    """Blocks for a grid-stride loop over `total` elements (0 for none)."""
    return (min((total + BLOCK - 1) // BLOCK, 65535),)


def _check_int32(op: str, **sizes) -> None:
    """The conv kernels index columns, pixels and planes with 32-bit ints (fast division)."""
    big = {k: v for k, v in sizes.items() if v >= 2 ** 31}
    if big:
        raise ValueError(f"{op} (CUDA): {big} must each be below 2**31; split the batch")


def _i(v) -> np.int32:
    return np.int32(v)


def _on_device(fn):
    """Run fn on the device of its first argument (an array)."""
    @functools.wraps(fn)
    def on_device(a, *args, **kwargs):
        with _cp().cuda.Device(a.device.id):
            return fn(a, *args, **kwargs)
    return on_device


class _Pool(threading.local):
    buffers: dict


_pool = _Pool()


def scratch(key: str, shape: tuple, dtype, like=None):
    """A reusable temporary, on the device of `like` (default: the current device); one
    pool per host thread, keyed by device, so concurrent calls and devices never share."""
    cp = _cp()
    device_id = like.device.id if like is not None else cp.cuda.Device().id
    pool = getattr(_pool, "buffers", None)
    if pool is None:
        pool = _pool.buffers = {}
    k = (key, tuple(shape), np.dtype(dtype), device_id)
    buf = pool.get(k)
    if buf is None:
        if len(pool) > 32:
            pool.clear()
        with cp.cuda.Device(device_id):
            buf = pool[k] = cp.empty(shape, dtype)
    return buf


@_on_device
def c(a):
    return _cp().ascontiguousarray(a)


@_on_device
def matmul(a, b, out=None):
    return _cp().matmul(a, b, out=out)


# ---------------------------------------------------------------------- conv
def _out(out, shape, dtype, op: str):
    return checked_out(_cp(), out, shape, dtype, op)


@_on_device
def im2col(x, geom, bias_row: bool = False, out=None):
    """x (B, C, H, W) -> cols (C*kh*kw [+ 1 row of ones], B*Ho*Wo)."""
    kh, kw, sh, sw, ph, pw, dh, dw, ho, wo = geom
    x = c(x)
    bsz, c_in, h, w = x.shape
    _check_int32("im2col", B_Ho_Wo=bsz * ho * wo, H_W=h * w, B_C=bsz * c_in)
    cols = _out(out, (c_in * kh * kw + int(bias_row), bsz * ho * wo), x.dtype, "im2col")
    _launch("conv.cu", "im2col", x.dtype, (_grid(bsz * ho * wo)[0], min(c_in, 65535)),
            (x, cols, *map(_i, (bsz, c_in, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo,
                                int(bias_row)))))
    return cols


@_on_device
def col2im(cols, shape, geom, out=None):
    """cols (C*kh*kw, B*Ho*Wo) -> x (B, C, H, W), overlapping taps summed (a gather)."""
    kh, kw, sh, sw, ph, pw, dh, dw, ho, wo = geom
    x = _out(out, shape, cols.dtype, "col2im")
    bsz, c_in, h, w = shape
    _check_int32("col2im", B_Ho_Wo=bsz * ho * wo, H_W=h * w, B_C=bsz * c_in)
    _launch("conv.cu", "col2im", cols.dtype, (_grid(h * w)[0], min(bsz * c_in, 65535)),
            (c(cols), x, *map(_i, (bsz, c_in, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo))))
    return x


@_on_device
def batch_to_channel_major(y, key=None):
    """(B, C, ...) -> (C, B * prod(...)) contiguous (the layout of a GEMM operand)."""
    bsz, ch = y.shape[:2]
    y3 = y.reshape(bsz, ch, math.prod(y.shape[2:]))  # not -1: B may be 0
    shape = (ch, bsz, y3.shape[2])
    out = scratch(key, shape, y.dtype, like=y) if key else _cp().empty(shape, y.dtype)
    out[...] = y3.transpose(1, 0, 2)
    return out.reshape(ch, -1)


# ---------------------------------------------------------------------- attention
@_on_device
def masked_softmax(s, scale, keep, causal):
    n, tq, tk = s.shape
    has_keep = keep is not None
    _launch("attention.cu", "masked_softmax", s.dtype, (n * tq,),
            (s, _compute_dtype(s.dtype).type(scale),
             c(keep) if has_keep else scratch("no_keep", (1,), np.uint8, like=s), _i(has_keep),
         _i(bool(causal)), _i(tq), _i(tk)))
    return s


@_on_device
def softmax_backward(p, dp, scale):
    tk = p.shape[-1]
    rows = math.prod(p.shape[:-1])
    _launch("attention.cu", "softmax_backward", p.dtype, (rows,),
            (c(p), dp, _compute_dtype(p.dtype).type(scale), _i(tk)))
    return dp


# ---------------------------------------------------------------------- fused attention
FLASH_MAX_D = 128   # TL_MAX_D of flash_attention.cu: q/k and v feature sizes it takes


def _flash_grid(n, t):
    return (n * -(-t // BLOCK),)


@_on_device
def flash_attention(q, k, v, scale, causal):
    """(out, lse) of softmax(scale q k^T) v per sequence, O(T) memory (flash_attention.cu)."""
    cp = _cp()
    q, k, v = c(q), c(k), c(v)
    n, tq, d = q.shape
    tk, dv = v.shape[1:]
    if max(d, dv) > FLASH_MAX_D:
        raise ValueError(f"flash_attention: feature sizes {d}, {dv} exceed {FLASH_MAX_D}")
    acc = _compute_dtype(q.dtype)        # lse (and scale) in the kernels' arithmetic type
    out = cp.empty((n, tq, dv), q.dtype)
    lse = cp.empty((n, tq), acc)
    _launch("flash_attention.cu", "flash_attention_forward", q.dtype, _flash_grid(n, tq),
            (q, k, v, out, lse, acc.type(scale), _i(bool(causal)), _i(tq), _i(tk), _i(d),
             _i(dv)))
    return out, lse


@_on_device
def flash_attention_backward(q, k, v, out, lse, dout, scale, causal):
    """(dq, dk, dv): a query-row kernel for dq (it also writes D_i = dout_i . out_i), then a
    key-row kernel for dk and dv; no atomics."""
    cp = _cp()
    q, k, v, out, dout = c(q), c(k), c(v), c(out), c(dout)
    n, tq, d = q.shape
    tk, dv_ = v.shape[1:]
    dq, dk, dv = cp.empty_like(q), cp.empty_like(k), cp.empty_like(v)
    acc = _compute_dtype(q.dtype)
    drow = cp.empty((n, tq), acc)
    sc, ca = acc.type(scale), _i(bool(causal))
    _launch("flash_attention.cu", "flash_attention_backward_dq", q.dtype, _flash_grid(n, tq),
            (q, k, v, out, c(lse), dout, dq, drow, sc, ca, _i(tq), _i(tk), _i(d), _i(dv_)))
    _launch("flash_attention.cu", "flash_attention_backward_dkdv", q.dtype,
            _flash_grid(n, tk),
            (q, k, v, c(lse), drow, dout, dk, dv, sc, ca, _i(tq), _i(tk), _i(d), _i(dv_)))
    return dq, dk, dv


# ---------------------------------------------------------------------- coupling
@_on_device
def coupling_forward(x, log_s, t, inverse):
    cp = _cp()
    bsz = x.shape[0]
    k = math.prod(x.shape[1:])
    out = cp.empty(x.shape, x.dtype)
    ld = cp.empty(bsz, x.dtype)
    _launch("coupling.cu", "coupling_forward", x.dtype, (bsz,),
            (c(x), c(log_s), c(t), _i(bool(inverse)), out, ld, _i(k)))
    return out, ld


@_on_device
def coupling_backward(g, out, log_s, t, inverse):
    cp = _cp()
    g_in, g_ls, g_t = (cp.empty(g.shape, g.dtype) for _ in range(3))
    _launch("coupling.cu", "coupling_backward", g.dtype, _grid(g.size),
            (c(g), c(out), c(log_s), c(t), _i(bool(inverse)), g_in, g_ls, g_t, np.int64(g.size)))
    return g_in, g_ls, g_t


# ---------------------------------------------------------------------- logsumexp / InfoNCE
@_on_device
def row_logsumexp(x2):
    """(lse, saved): lse per row, and what the backward needs (row max, row sum)."""
    x2 = c(x2)
    out = _cp().empty(x2.shape[0], x2.dtype)
    mx, tot = (_cp().empty(x2.shape[0], _compute_dtype(x2.dtype)) for _ in range(2))
    _launch("contrastive.cu", "row_logsumexp", x2.dtype, (x2.shape[0],),
            (x2, out, mx, tot, _i(x2.shape[1])))
    return out, (mx, tot)


@_on_device
def row_logsumexp_backward(x2, saved, g):
    x2 = c(x2)
    gx = _cp().empty(x2.shape, x2.dtype)
    _launch("contrastive.cu", "row_logsumexp_backward", x2.dtype, (x2.shape[0],),
            (x2, saved[0], saved[1], c(g), gx, _i(x2.shape[0]), _i(x2.shape[1])))
    return gx


@_on_device
def row_cross_entropy(s, inv_tau, shift, mask_diag):
    loss = _cp().empty(s.shape[0], s.dtype)
    _launch("contrastive.cu", "row_cross_entropy", s.dtype, (s.shape[0],),
            (s, _compute_dtype(s.dtype).type(inv_tau), _i(shift), _i(bool(mask_diag)), loss,
             _i(s.shape[1])))
    return loss


@_on_device
def cross_entropy_grad(p, g, inv_tau, shift, symmetric):
    """G_ij = g_i inv_tau (P_ij - [j == (i + shift) % C]); symmetric (square P): G + G^T,
    by 32 x 32 tiles so that the transposed reads stay coalesced."""
    out = scratch("ce_grad", p.shape, p.dtype, like=p)
    args = (c(p), c(g), _compute_dtype(p.dtype).type(inv_tau), _i(shift), out)
    if symmetric:
        if p.shape[0] != p.shape[1]:
            raise ValueError(f"cross_entropy_grad: symmetric needs a square P, got {p.shape}")
        tiles = -(-p.shape[1] // 32)
        _launch("contrastive.cu", "cross_entropy_grad_symmetric", p.dtype,
                (min(tiles * tiles, 65535),), args + (_i(p.shape[1]),))
    else:
        _launch("contrastive.cu", "cross_entropy_grad", p.dtype, (p.shape[0],),
                args + (_i(p.shape[0]), _i(p.shape[1])))
    return out


@_on_device
def normalize_rows(z, eps=1e-12):
    cp = _cp()
    z = c(z)
    zn = cp.empty_like(z)
    acc = _compute_dtype(z.dtype)                   # the norms in float for 16-bit rows
    norm = cp.empty(z.shape[0], acc)
    _launch("contrastive.cu", "normalize_rows", z.dtype, (z.shape[0],),
            (z, zn, norm, acc.type(eps), _i(z.shape[1])))
    return zn, norm


@_on_device
def normalize_rows_backward(gzn, zn, norm, eps=1e-12):
    gz = _cp().empty_like(zn)
    _launch("contrastive.cu", "normalize_rows_backward", zn.dtype, (zn.shape[0],),
            (c(gzn), zn, norm, norm.dtype.type(eps), gz, _i(zn.shape[1])))
    return gz


# ---------------------------------------------------------------------- layer normalization
@_on_device
def layer_norm(x2, w, b, eps):
    """One block per row (layernorm.cu): mean and variance in one shifted pass."""
    cp = _cp()
    x2 = c(x2)
    rows, d = x2.shape
    y = cp.empty_like(x2)
    mu, rstd = cp.empty(rows, cp.float64), cp.empty(rows, cp.float64)
    _launch("layernorm.cu", "layer_norm_forward", x2.dtype, (rows,),
            (x2, c(w), c(b), np.float64(eps), y, mu, rstd, _i(d)))
    return y, mu, rstd


@_on_device
def layer_norm_backward(gy2, x2, w, mu, rstd):
    """gx one block per row; gw, gb one thread per column, summing over the rows."""
    cp = _cp()
    gy2, x2 = c(gy2), c(x2)
    rows, d = x2.shape
    gx = cp.empty_like(x2)
    gw, gb = cp.empty(d, x2.dtype), cp.empty(d, x2.dtype)
    _launch("layernorm.cu", "layer_norm_backward", x2.dtype, (rows,),
            (gy2, x2, c(w), mu, rstd, gx, _i(d)))
    if rows == 0:                       # no rows: nothing launched, the sums are zero
        gw[...] = 0
        gb[...] = 0
    else:
        _launch("layernorm.cu", "layer_norm_param_grad", x2.dtype, _grid(d),
                (gy2, x2, mu, rstd, gw, gb, _i(rows), _i(d)))
    return gx, gw, gb


# ---------------------------------------------------------------------- activations
@_on_device
def gelu(x):
    """(y, dy/dx) of the exact GELU, one thread per element (activation.cu)."""
    cp = _cp()
    x = c(x)
    y, d = cp.empty_like(x), cp.empty_like(x)
    _launch("activation.cu", "gelu_forward", x.dtype, _grid(x.size),
            (x, y, d, np.int64(x.size)))
    return y, d


# ---------------------------------------------------------------------- recurrent cells
@_on_device
def lstm_cell(gates, c):
    """(h', c', act, tanh c'), one thread per (b, j) state element (lstm.cu)."""
    cp = _cp()
    contig = cp.ascontiguousarray      # (`c` is the cell state here)
    gates, c = contig(gates), contig(c)
    bsz, hid = c.shape
    _check_int32("lstm_cell", B_H=bsz * hid)
    act = cp.empty_like(gates)
    c_new, tanh_c, h_new = cp.empty_like(c), cp.empty_like(c), cp.empty_like(c)
    _launch("lstm.cu", "lstm_cell_forward", gates.dtype, _grid(c.size),
            (gates, c, act, c_new, tanh_c, h_new, _i(bsz), _i(hid)))
    return h_new, c_new, act, tanh_c


@_on_device
def lstm_cell_backward(act, c, tanh_c, gh, gc):
    """(dgates, dc); gh or gc None means zero."""
    cp = _cp()
    contig = cp.ascontiguousarray      # (`c` is the cell state here)
    act, c, tanh_c = contig(act), contig(c), contig(tanh_c)
    bsz, hid = c.shape
    _check_int32("lstm_cell_backward", B_H=bsz * hid)
    gh = cp.zeros_like(c) if gh is None else contig(gh.astype(c.dtype, copy=False))
    gc = cp.zeros_like(c) if gc is None else contig(gc.astype(c.dtype, copy=False))
    dgates, dc_prev = cp.empty_like(act), cp.empty_like(c)
    _launch("lstm.cu", "lstm_cell_backward", act.dtype, _grid(c.size),
            (act, c, tanh_c, gh, gc, dgates, dc_prev, _i(bsz), _i(hid)))
    return dgates, dc_prev


@_on_device
def lstm_step(gi, hh, bias, c, act, c_new, tanh_c, h_new):
    """In place, one thread per (b, j): gates = gi + hh + bias, the cell, into act, c_new,
    tanh_c, h_new (all C-contiguous; bias (4H,) or None)."""
    bsz, hid = c.shape
    _check_int32("lstm_step", B_H=bsz * hid)
    has_bias = bias is not None
    _launch("lstm.cu", "lstm_step_forward", gi.dtype, _grid(c.size),
            (gi, hh, bias if has_bias else gi, _i(has_bias), c, act, c_new, tanh_c, h_new,
             _i(bsz), _i(hid)))


@_on_device
def lstm_step_backward(act, c, tanh_c, gout, dh, dc, dgates):
    """In place, one thread per (b, j): dgates from dL/dh' = gout + dh (gout None: dh
    alone) and dL/dc' = dc, which becomes dL/dc."""
    bsz, hid = c.shape
    _check_int32("lstm_step_backward", B_H=bsz * hid)
    has_gout = gout is not None
    _launch("lstm.cu", "lstm_step_backward", act.dtype, _grid(c.size),
            (act, c, tanh_c, gout if has_gout else dh, _i(has_gout), dh, dc, dgates, _i(bsz),
             _i(hid)))


# ---------------------------------------------------------------------- embedding
@_on_device
def embedding_backward(idx, gy, num_embeddings, padding_idx=None):
    """One block per looked-up row, its elements atomically added into gW (embedding.cu);
    float16 and bfloat16 gradients are summed in float32 and rounded once."""
    cp = _cp()
    d = gy.shape[-1]
    n = idx.size
    out = cp.zeros((num_embeddings, d), _compute_dtype(gy.dtype))
    pad = -1 if padding_idx is None else padding_idx % num_embeddings
    _launch("embedding.cu", "embedding_backward", gy.dtype, (min(n, 2 ** 20),),
            (c(idx.reshape(-1).astype(cp.int64)), c(gy.reshape(-1, d)), np.int64(pad), out,
             np.int64(n), _i(d), np.int64(num_embeddings)))
    return out if out.dtype == gy.dtype else out.astype(gy.dtype)
