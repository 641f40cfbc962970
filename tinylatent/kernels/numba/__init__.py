"""The CPU backend of the fast kernels: Numba loops for the passes that move or reduce
data, NumPy (OpenBLAS) for the contractions.

Importing this package imports Numba (about half a second) and nothing is compiled until a
kernel is first called; compiled machine code is cached on disk (`cache=True`, in
`__pycache__`), so later processes load it in milliseconds. `kernels.dispatch` imports this
module only when a fast CPU kernel is actually asked for, never at `import tinylatent`.

Every function here takes and returns NumPy arrays; it implements KernelBackend
(kernels/backend.py), as the CUDA backend (`kernels.cuda`) does on CuPy arrays, so the fast
autograd Functions in tinylatent/ops/ serve both.
"""
from __future__ import annotations

import math
import threading

import numpy as np

from ..backend import checked_out
from . import activation as _act
from . import attention as _att
from . import contrastive as _con
from . import conv as _conv
from . import coupling as _cpl
from . import embedding as _emb
from . import layernorm as _ln
from . import lstm as _lstm

xp = np
name = "numba"
half_ops = frozenset()   # no float16 / bfloat16 kernels on the CPU: they run the references

class _Pool(threading.local):
    buffers: dict


_pool = _Pool()


def scratch(key: str, shape: tuple, dtype, like=None) -> np.ndarray:
    """A reusable temporary for values consumed inside one call (never returned to the
    caller): fresh multi-megabyte arrays cost page faults on every call. One pool per
    thread, so concurrent calls never share a buffer. (`like` names the device on the CUDA
    backend; there is one CPU.)"""
    pool = getattr(_pool, "buffers", None)
    if pool is None:
        pool = _pool.buffers = {}
    k = (key, tuple(shape), np.dtype(dtype))
    buf = pool.get(k)
    if buf is None:
        if len(pool) > 32:
            pool.clear()
        buf = pool[k] = np.empty(shape, dtype)
    return buf


def c(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a)


def matmul(a, b, out=None):
    return np.matmul(a, b, out=out)


# ---------------------------------------------------------------------- conv
def _out(out, shape, dtype, op: str):
    return checked_out(np, out, shape, dtype, op)


def im2col(x, geom, bias_row: bool = False, out=None):
    """x (B, C, H, W) -> cols (C*kh*kw [+ 1 row of ones], B*Ho*Wo)."""
    kh, kw, sh, sw, ph, pw, dh, dw, ho, wo = geom
    bsz, c_in = x.shape[:2]
    cols = _out(out, (c_in * kh * kw + int(bias_row), bsz * ho * wo), x.dtype, "im2col")
    if _conv.phase_applies(*x.shape[2:], sh, sw, ho, wo):
        _conv.im2col_stride2(c(x), kh, kw, ph, pw, dh, dw, ho, wo, cols,
                             _phases(x.shape, ho, wo, x.dtype))
    else:
        _conv.im2col(c(x), kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, cols)
    return cols


def col2im(cols, shape, geom, out=None):
    """cols (C*kh*kw, B*Ho*Wo) -> x (B, C, H, W), overlapping taps summed."""
    kh, kw, sh, sw, ph, pw, dh, dw, ho, wo = geom
    x = _out(out, shape, cols.dtype, "col2im")
    if _conv.phase_applies(*shape[2:], sh, sw, ho, wo):
        _conv.col2im_stride2(c(cols), kh, kw, ph, pw, dh, dw, ho, wo, x,
                             _phases(shape, ho, wo, cols.dtype))
    else:
        _conv.col2im(c(cols), kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, x)
    return x


def _phases(shape, ho, wo, dtype):
    """The stride-2 kernels' phase planes (C, 2, 2, B*Ho*Wo): a reused scratch buffer."""
    return scratch("conv_phases", (shape[1], 2, 2, shape[0] * ho * wo), dtype)


def batch_to_channel_major(y, key=None):
    """(B, C, ...) -> (C, B * prod(...)) contiguous (the layout of a GEMM operand)."""
    bsz, ch = y.shape[:2]
    y3 = y.reshape(bsz, ch, math.prod(y.shape[2:]))  # not -1: B may be 0
    shape = (ch, bsz, y3.shape[2])
    out = scratch(key, shape, y.dtype) if key else np.empty(shape, y.dtype)
    np.copyto(out, y3.transpose(1, 0, 2))
    return out.reshape(ch, -1)


# ---------------------------------------------------------------------- attention
def masked_softmax(s, scale, keep, causal):
    """In place on s (N, Tq, Tk); keep: uint8 (N, Tq, Tk) or None."""
    has_keep = keep is not None
    _att.masked_softmax(s, s.dtype.type(scale),
                        keep if has_keep else np.zeros((1, 1, 1), np.uint8), has_keep,
                        bool(causal))
    return s


def softmax_backward(p, dp, scale):
    _att.softmax_backward(p, dp, p.dtype.type(scale))
    return dp


# ---------------------------------------------------------------------- coupling
def coupling_forward(x, log_s, t, inverse):
    out = np.empty(x.shape, x.dtype)
    ld = np.empty(x.shape[0], x.dtype)
    x2, ls2, t2, o2 = (c(a).reshape(a.shape[0], -1) for a in (x, log_s, t, out))
    _cpl.coupling_forward(x2, ls2, t2, bool(inverse), o2, ld)
    return out, ld


def coupling_backward(g, out, log_s, t, inverse):
    """(grad of the input, of log_s, of t), each of g's shape (allocated in that shape, so
    the engine can adopt them as .grad without a copy)."""
    g_in, g_ls, g_t = (np.empty(g.shape, g.dtype) for _ in range(3))
    flat = [c(a).reshape(a.shape[0], -1) for a in (g, out, log_s, t, g_in, g_ls, g_t)]
    _cpl.coupling_backward(flat[0], flat[1], flat[2], flat[3], bool(inverse), *flat[4:])
    return g_in, g_ls, g_t


# ---------------------------------------------------------------------- logsumexp / InfoNCE
def row_logsumexp(x2):
    """(lse, saved): lse per row, and what the backward needs (row max, row sum)."""
    n = x2.shape[0]
    out, mx, tot = (np.empty(n, x2.dtype) for _ in range(3))
    _con.row_logsumexp(c(x2), out, mx, tot)
    return out, (mx, tot)


def row_logsumexp_backward(x2, saved, g):
    gx = np.empty(x2.shape, x2.dtype)
    _con.row_logsumexp_backward(c(x2), saved[0], saved[1], c(g), gx)
    return gx


def row_cross_entropy(s, inv_tau, shift, mask_diag):
    """In place: s -> softmax P; returns per-row losses."""
    loss = np.empty(s.shape[0], s.dtype)
    _con.row_cross_entropy(s, s.dtype.type(inv_tau), int(shift), bool(mask_diag), loss)
    return loss


def cross_entropy_grad(p, g, inv_tau, shift, symmetric):
    out = scratch("ce_grad", p.shape, p.dtype)
    _con.cross_entropy_grad(p, c(g), p.dtype.type(inv_tau), int(shift), bool(symmetric), out)
    return out


def normalize_rows(z, eps=1e-12):
    z = c(z)
    zn = np.empty_like(z)
    norm = np.empty(z.shape[0], z.dtype)
    _con.normalize_rows(z, zn, norm, z.dtype.type(eps))
    return zn, norm


def normalize_rows_backward(gzn, zn, norm, eps=1e-12):
    gz = np.empty_like(zn)
    _con.normalize_rows_backward(c(gzn), zn, norm, zn.dtype.type(eps), gz)
    return gz


# ---------------------------------------------------------------------- layer normalization
def flash_attention(q, k, v, scale, causal):
    return _att.flash_attention(c(q), c(k), c(v), scale, causal)


def flash_attention_backward(q, k, v, out, lse, dout, scale, causal):
    return _att.flash_attention_backward(c(q), c(k), c(v), c(out), lse, c(dout), scale, causal)


def gelu(x):
    work = scratch("gelu_exp", (x.size,), x.dtype) if x.dtype == np.float32 else None
    return _act.gelu_forward(x, work)


def layer_norm(x2, w, b, eps):
    return _ln.layer_norm_forward(c(x2), w, b, eps)


def layer_norm_backward(gy2, x2, w, mu, rstd):
    return _ln.layer_norm_backward(c(gy2), c(x2), w, mu, rstd)


# ---------------------------------------------------------------------- recurrent cells
def lstm_cell(gates, c):
    return _lstm.lstm_cell_forward(gates, c)


def lstm_cell_backward(act, c, tanh_c, gh, gc):
    return _lstm.lstm_cell_backward(act, c, tanh_c, gh, gc)


def lstm_step(gi, hh, bias, c, act, c_new, tanh_c, h_new):
    _lstm.lstm_step(gi, hh, bias, c, act, c_new, tanh_c, h_new)


def lstm_step_backward(act, c, tanh_c, gout, dh, dc, dgates):
    _lstm.lstm_step_backward(act, c, tanh_c, gout, dh, dc, dgates)


# ---------------------------------------------------------------------- embedding
def embedding_backward(idx, gy, num_embeddings, padding_idx=None):
    return _emb.embedding_backward(idx, gy, num_embeddings, padding_idx)
