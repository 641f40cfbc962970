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
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

from ._math import fexp

__all__ = ["lstm_cell_forward", "lstm_cell_backward", "lstm_cell_forward_reference",
           "lstm_cell_backward_reference"]

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


@nb.jit(**_JIT32)
def _forward(gates, c, act, c_new, tanh_c, h_new, sigmoid, tanh):  # pragma: no cover
    """sigmoid, tanh: _sigmoid32 / _tanh32 (float32, straight-line: the loop vectorizes) or
    _sigmoid / _tanh (float64, libm)."""
    bsz, h4 = gates.shape
    hid = h4 // 4
    for r in range(bsz):
        a, s = gates[r], act[r]
        cr, cn_r, tc_r, h_r = c[r], c_new[r], tanh_c[r], h_new[r]
        for j in range(hid):
            i = sigmoid(a[j])
            f = sigmoid(a[hid + j])
            g = tanh(a[2 * hid + j])
            o = sigmoid(a[3 * hid + j])
            s[j] = i
            s[hid + j] = f
            s[2 * hid + j] = g
            s[3 * hid + j] = o
            cn = f * cr[j] + i * g
            tc = tanh(cn)
            cn_r[j] = cn
            tc_r[j] = tc
            h_r[j] = o * tc


@nb.jit(**_JIT)
def _backward(act, c, tanh_c, gh, gc, dgates, dc_prev):  # pragma: no cover - compiled
    bsz, h4 = act.shape
    hid = h4 // 4
    for r in range(bsz):
        s, d = act[r], dgates[r]
        for j in range(hid):
            i, f, g, o = s[j], s[hid + j], s[2 * hid + j], s[3 * hid + j]
            tc = tanh_c[r, j]
            dh = gh[r, j]
            dc = gc[r, j] + dh * o * (1 - tc * tc)
            d[j] = dc * g * i * (1 - i)
            d[hid + j] = dc * c[r, j] * f * (1 - f)
            d[2 * hid + j] = dc * i * (1 - g * g)
            d[3 * hid + j] = dh * tc * o * (1 - o)
            dc_prev[r, j] = dc * f


def _check(gates: np.ndarray, c: np.ndarray) -> None:
    if gates.ndim != 2 or gates.shape[1] % 4 or c.shape != (gates.shape[0], gates.shape[1] // 4):
        raise ValueError(f"lstm_cell kernel: gates must be (B, 4H) and c (B, H), got "
                         f"{gates.shape} and {c.shape}")
    if gates.dtype not in (np.float32, np.float64) or c.dtype != gates.dtype:
        raise TypeError(f"lstm_cell kernel: gates and c must share a float32/float64 dtype, "
                        f"got {gates.dtype} and {c.dtype}")


def lstm_cell_forward(gates: np.ndarray, c: np.ndarray):
    """(h', c', act, tanh(c')): the new state and what the backward needs."""
    _check(gates, c)
    gates, c = np.ascontiguousarray(gates), np.ascontiguousarray(c)
    act = np.empty_like(gates)
    c_new, tanh_c, h_new = np.empty_like(c), np.empty_like(c), np.empty_like(c)
    f32 = gates.dtype == np.float32
    _forward(gates, c, act, c_new, tanh_c, h_new, _sigmoid32 if f32 else _sigmoid,
             _tanh32 if f32 else _tanh)
    return h_new, c_new, act, tanh_c


def lstm_cell_backward(act: np.ndarray, c: np.ndarray, tanh_c: np.ndarray, gh, gc):
    """(dgates (B, 4H), dc (B, H)); gh or gc None means zero."""
    _check(act, c)
    zeros = np.zeros_like(c)
    gh = zeros if gh is None else np.ascontiguousarray(gh, dtype=c.dtype)
    gc = zeros if gc is None else np.ascontiguousarray(gc, dtype=c.dtype)
    dgates, dc_prev = np.empty_like(act), np.empty_like(c)
    _backward(np.ascontiguousarray(act), np.ascontiguousarray(c),
              np.ascontiguousarray(tanh_c), gh, gc, dgates, dc_prev)
    return dgates, dc_prev


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
