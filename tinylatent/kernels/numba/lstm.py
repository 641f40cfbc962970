"""Numba CPU kernels for the pointwise part of an LSTM cell (Hochreiter & Schmidhuber 1997;
the gate layout of PyTorch's nn.LSTM), and the NumPy reference twin they are tested against.

Around two GEMMs, gates = x W_ih^T + b_ih + h W_hh^T + b_hh  (B, 4H) in the order i, f, g, o:

    i = sigmoid(a_i)   f = sigmoid(a_f)   g = tanh(a_g)   o = sigmoid(a_o)
    c' = f c + i g     h' = o tanh(c')

The forward writes the activated gates (B, 4H) and tanh(c') for the backward, which takes
dL/dh' and dL/dc' (from the next step) and returns dL/dgates (the input of both GEMMs'
backward) and dL/dc:

    dc  = gc + gh o (1 - tanh(c')^2)
    da_i = dc g i (1 - i)    da_f = dc c f (1 - f)    da_g = dc i (1 - g^2)
    da_o = gh tanh(c') o (1 - o)                      dc_prev = dc f

One pass over the (B, H) elements each way instead of the ~15 array passes (and
temporaries) the same step costs as separate NumPy ops.

`lstm_step` / `lstm_step_backward` are the same passes for a whole sequence
(tinylatent.ops.recurrent.lstm_sequence): they write into the sequence's buffers instead of
fresh arrays, take the two GEMM results gi = W_ih x_t + b_ih and hh = W_hh h_{t-1} unsummed
(gates = gi + hh + b_hh, summed in the pass), and the backward takes dL/dh' in two parts
(the output's own gradient and the next step's W_hh^T dgates) and updates dL/dc in place.
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np
from numba import types
from numba.extending import overload

from ._math import fexp

__all__ = ["lstm_cell_forward", "lstm_cell_backward", "lstm_step", "lstm_step_backward",
           "lstm_cell_forward_reference", "lstm_cell_backward_reference",
           "lstm_step_reference", "lstm_step_backward_reference"]

_JIT = dict(nopython=True, cache=True, nogil=True, fastmath={"contract", "nsz"})
# float32: sigmoid and tanh from `fexp`, which vectorizes (math.exp / math.tanh are scalar
# libm calls, ~5x slower over a (B, 4H) block); NumPy's error model, since Python's checks
# every division for a zero divisor and that branch alone stops vectorization.
_JIT32 = dict(nopython=True, cache=True, nogil=True, error_model="numpy",
              fastmath={"contract", "nsz", "arcp"})


@nb.jit(**_JIT)
def _sigmoid(a):  # pragma: no cover - compiled
    # exp of a non-positive number only: no overflow for large |a|
    if a >= 0:
        return 1.0 / (1.0 + math.exp(-a))
    e = math.exp(a)
    return e / (1.0 + e)


@nb.jit(**_JIT)
def _tanh(x):  # pragma: no cover - compiled
    return math.tanh(x)


@nb.jit(**_JIT32)
def _sigmoid32(a):  # pragma: no cover - compiled
    """1 / (1 + e^-a) from e = exp(-|a|) <= 1 (no overflow): r = 1 / (1 + e) is sigmoid(|a|),
    e r is sigmoid(-|a|)."""
    e = fexp(-abs(a))
    r = np.float32(1.0) / (np.float32(1.0) + e)
    return r if a >= np.float32(0.0) else e * r


@nb.jit(**_JIT32)
def _tanh32(x):  # pragma: no cover - compiled
    """tanh x = sign(x) (1 - e) / (1 + e), e = exp(-2|x|); below |x| = 0.1, where 1 - e
    would cancel, the series x - x^3/3 + 2x^5/15 - 17x^7/315 (next term < 3e-11 |x|)."""
    ax = abs(x)
    e = fexp(np.float32(-2.0) * ax)
    t = (np.float32(1.0) - e) / (np.float32(1.0) + e)
    x2 = x * x
    series = x * (np.float32(1.0) + x2 * (np.float32(-1.0 / 3.0) + x2 * (
        np.float32(2.0 / 15.0) + x2 * np.float32(-17.0 / 315.0))))
    if ax < np.float32(0.1):
        return series
    return t if x >= np.float32(0.0) else -t


def _sigmoid_t(a):  # pragma: no cover - the Python fallback; Numba uses the overload below
    return _sigmoid(a)


def _tanh_t(x):  # pragma: no cover - the Python fallback; Numba uses the overload below
    return _tanh(x)


@overload(_sigmoid_t)
def _sigmoid_t_overload(a):
    """_sigmoid32 (straight-line, vectorizes) for float32, _sigmoid (libm) for float64: chosen
    at compile time (passing the function as a kernel argument costs ~4 us a call to type)."""
    return (lambda a: _sigmoid32(a)) if a == types.float32 else (lambda a: _sigmoid(a))


@overload(_tanh_t)
def _tanh_t_overload(x):
    return (lambda x: _tanh32(x)) if x == types.float32 else (lambda x: _tanh(x))


@nb.jit(**_JIT32)
def _forward(gi, hh, bias, c, act, c_new, tanh_c, h_new):  # pragma: no cover
    """gates = gi + hh + bias (hh and bias may be None: absent), then the cell. One simple loop
    per gate block: a single loop computing all four gates of element j (strided by H)
    does not vectorize and took 7x longer for (20, 800) float32 gates."""
    bsz, h4 = gi.shape
    hid = h4 // 4
    for r in range(bsz):
        a, s, hr = gi[r], act[r], _row(hh, r)
        for k in range(hid):
            s[k] = _sigmoid_t(_sum_at(a, hr, bias, k))
        for k in range(hid, 2 * hid):
            s[k] = _sigmoid_t(_sum_at(a, hr, bias, k))
        for k in range(2 * hid, 3 * hid):
            s[k] = _tanh_t(_sum_at(a, hr, bias, k))
        for k in range(3 * hid, h4):
            s[k] = _sigmoid_t(_sum_at(a, hr, bias, k))
        cr, cn_r, tc_r, h_r = c[r], c_new[r], tanh_c[r], h_new[r]
        for j in range(hid):
            cn = s[hid + j] * cr[j] + s[j] * s[2 * hid + j]
            tc = _tanh_t(cn)
            cn_r[j] = cn
            tc_r[j] = tc
            h_r[j] = s[3 * hid + j] * tc


def _row(a, r):  # pragma: no cover - the Python fallback; Numba uses the overload below
    return None if a is None else a[r]


@overload(_row, inline="always")
def _row_overload(a, r):
    """Row r of a, or None for an absent array (the branch is resolved at compile time)."""
    if isinstance(a, types.NoneType):
        return lambda a, r: None
    return lambda a, r: a[r]


@nb.jit(**_JIT32)
def _sum_at(a, b, bias, k):  # pragma: no cover - compiled
    """a[k] + b[k] + bias[k], absent (None) terms left out at compile time (Numba prunes
    an `is None` branch on an argument typed None)."""
    v = a[k]
    if b is not None:
        v += b[k]
    if bias is not None:
        v += bias[k]
    return v


@nb.jit(**_JIT)
def _backward(act, c, tanh_c, gout, dh, dc, dgates):  # pragma: no cover - compiled
    """In place on dc: dL/dh' = gout + dh (gout may be None), dL/dc' = dc on entry, dL/dc
    on return; writes dgates."""
    bsz, h4 = act.shape
    hid = h4 // 4
    for r in range(bsz):
        s, d = act[r], dgates[r]
        cr, tr, dh_r, dc_r, go_r = c[r], tanh_c[r], dh[r], dc[r], _row(gout, r)
        for j in range(hid):
            i, f, g, o = s[j], s[hid + j], s[2 * hid + j], s[3 * hid + j]
            tc = tr[j]
            gh = _sum_at(dh_r, go_r, None, j)
            dcj = dc_r[j] + gh * o * (1 - tc * tc)
            d[j] = dcj * g * i * (1 - i)
            d[hid + j] = dcj * cr[j] * f * (1 - f)
            d[2 * hid + j] = dcj * i * (1 - g * g)
            d[3 * hid + j] = gh * tc * o * (1 - o)
            dc_r[j] = dcj * f


def _check(gates: np.ndarray, c: np.ndarray, op: str = "lstm_cell") -> None:
    if gates.ndim != 2 or gates.shape[1] % 4 or c.shape != (gates.shape[0], gates.shape[1] // 4):
        raise ValueError(f"{op} kernel: gates must be (B, 4H) and c (B, H), got "
                         f"{gates.shape} and {c.shape}")
    if gates.dtype not in (np.float32, np.float64) or c.dtype != gates.dtype:
        raise TypeError(f"{op} kernel: gates and c must share a float32/float64 dtype, "
                        f"got {gates.dtype} and {c.dtype}")


def lstm_cell_forward(gates: np.ndarray, c: np.ndarray):
    """(h', c', act, tanh(c')): the new state and what the backward needs."""
    _check(gates, c)
    gates, c = np.ascontiguousarray(gates), np.ascontiguousarray(c)
    act = np.empty_like(gates)
    c_new, tanh_c, h_new = np.empty_like(c), np.empty_like(c), np.empty_like(c)
    _forward(gates, None, None, c, act, c_new, tanh_c, h_new)
    return h_new, c_new, act, tanh_c


def lstm_cell_backward(act: np.ndarray, c: np.ndarray, tanh_c: np.ndarray, gh, gc):
    """(dgates (B, 4H), dc (B, H)); gh or gc None means zero."""
    _check(act, c)
    gh = np.zeros_like(c) if gh is None else np.ascontiguousarray(gh, dtype=c.dtype)
    dc = np.zeros_like(c) if gc is None else np.array(gc, dtype=c.dtype, order="C")  # a copy
    dgates = np.empty_like(act)
    _backward(np.ascontiguousarray(act), np.ascontiguousarray(c), np.ascontiguousarray(tanh_c),
              None, gh, dc, dgates)
    return dgates, dc


def lstm_step(gi, hh, bias, c, act, c_new, tanh_c, h_new) -> None:
    """One step of a sequence, into the given (C-contiguous) outputs: gates = gi + hh + bias
    with gi, hh (B, 4H) and bias (4H,) or None, then the cell on c (B, H); writes the
    activated gates act (B, 4H), c', tanh(c') and h' (B, H)."""
    _check(gi, c, "lstm_step")
    _forward(gi, hh, bias, c, act, c_new, tanh_c, h_new)


def lstm_step_backward(act, c, tanh_c, gout, dh, dc, dgates) -> None:
    """One step of the backward through time, in place: with dL/dh' = gout + dh (gout, the
    output's own gradient, may be None) and dL/dc' = dc, writes dgates (B, 4H) and
    overwrites dc with dL/dc."""
    _check(act, c, "lstm_step_backward")
    _backward(act, c, tanh_c, gout, dh, dc, dgates)


# ---------------------------------------------------------------------- reference twin
def _sigmoid_ref(a, xp):
    return 0.5 * (xp.tanh(0.5 * a) + 1.0)    # = 1 / (1 + exp(-a)), without overflow


def lstm_cell_forward_reference(gates, c, xp=np):
    """The same (h', c', act, tanh(c')) in plain array ops."""
    i, f, g, o = xp.split(gates, 4, axis=1)
    i, f, g, o = _sigmoid_ref(i, xp), _sigmoid_ref(f, xp), xp.tanh(g), _sigmoid_ref(o, xp)
    c_new = f * c + i * g
    tc = xp.tanh(c_new)
    return o * tc, c_new, xp.concatenate([i, f, g, o], axis=1), tc


def lstm_cell_backward_reference(act, c, tanh_c, gh, gc, xp=np):
    """The same (dgates, dc) in plain array ops."""
    gh = xp.zeros_like(c) if gh is None else gh
    gc = xp.zeros_like(c) if gc is None else gc
    i, f, g, o = xp.split(act, 4, axis=1)
    dc = gc + gh * o * (1 - tanh_c ** 2)
    dgates = xp.concatenate([dc * g * i * (1 - i), dc * c * f * (1 - f), dc * i * (1 - g ** 2),
                             gh * tanh_c * o * (1 - o)], axis=1)
    return dgates, dc * f


def lstm_step_reference(gi, hh, bias, c, xp=np):
    """lstm_step's (h', c', act, tanh(c')) in plain array ops: the cell of gi + hh + bias."""
    gates = gi + hh if bias is None else gi + hh + bias
    return lstm_cell_forward_reference(gates, c, xp)


def lstm_step_backward_reference(act, c, tanh_c, gout, dh, dc, xp=np):
    """lstm_step_backward's (dgates, dL/dc) in plain array ops, with dL/dh' = gout + dh."""
    return lstm_cell_backward_reference(act, c, tanh_c, dh if gout is None else gout + dh, dc,
                                        xp)
