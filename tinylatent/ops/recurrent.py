"""The pointwise math of one recurrent step, as ops: LSTM (Hochreiter & Schmidhuber 1997)
and GRU (Cho et al. 2014), PyTorch's gate order. The layers (tinylatent/nn/recurrent.py) add
the two matmuls of each step around them.

    lstm_cell(gates, c) -> (h', c'):  gates (B, 4H) = W_ih x + b_ih + W_hh h + b_hh,
        i, f, o = sigmoid, g = tanh of the four blocks,  c' = f c + i g,  h' = o tanh(c')
    gru_cell(gi, gh, h) -> h':  gi = W_ih x + b_ih, gh = W_hh h + b_hh (B, 3H),
        r, z = sigmoid(gi_{r,z} + gh_{r,z}),  n = tanh(gi_n + r gh_n),  h' = (1 - z) n + z h

Each is one Function instead of ~12 ops per time step; the backward runs on the saved
arrays, or, under create_graph, on Tensors recomputed from the inputs (so every order of
derivative exists).
"""
from __future__ import annotations

from .. import autograd
from ..autograd import Function
from ..backend import array_module
from ..tensor import Tensor
from .shape import chunk
from .shape import cat as _tensor_cat
from .fast import fast_backend
from .unary import sigmoid, tanh

__all__ = ["lstm_cell", "gru_cell"]


def _sigmoid(xp, x):
    return 0.5 * (1.0 + xp.tanh(0.5 * x))  # = 1 / (1 + exp(-x)), without overflow


def _cat(parts, like):
    """Concatenate along the last axis: arrays (fast backward) or Tensors (create_graph)."""
    if isinstance(like, Tensor):
        return _tensor_cat(parts, axis=-1)
    return array_module(like).concatenate(parts, axis=-1)


def _lstm_pointwise_grad(i, f, g, o, c, tc, gh, gc):
    """Gradients of h' = o tanh(c'), c' = f c + i g w.r.t. the pre-activation gates and c,
    given dL/dh' = gh, dL/dc' = gc. Plain arithmetic, so it runs on arrays or Tensors."""
    dc = gc + gh * o * (1.0 - tc * tc)
    d_gates = _cat([dc * g * i * (1.0 - i), dc * c * f * (1.0 - f), dc * i * (1.0 - g * g),
                    gh * tc * o * (1.0 - o)], i)                   # (B, 4H) in i, f, g, o order
    return d_gates, dc * f


class _LSTMPointwise(Function):
    """(h', c') with i, f, o = sigmoid, g = tanh of the gate pre-activations (B, 4H):
    c' = f * c + i * g,  h' = o * tanh(c').  One op instead of ~12 per time step. On a
    kernel backend (`be`: kernels/numba/lstm.py, kernels/cuda/lstm.cu) forward and backward
    are one fused pass each; otherwise array ops. The backward (`_lstm_pointwise_grad`, or
    the kernel) runs on the saved arrays, or on Tensors recomputed from the inputs when a
    graph of the backward is being built (create_graph). An output no gradient reached (the
    last c', or h' when only c' is used) counts as zero."""

    @staticmethod
    def forward(ctx, gates, c, *, be=None):
        ctx.be = be
        ctx.save_for_backward(gates, c)
        if be is not None:
            h_new, c_new, act, tc = be.lstm_cell(gates, c)
            ctx.arrays = (act, c, tc)
            return h_new, c_new                                    # (B, H) each
        xp = ctx.xp
        i, f, g, o = xp.split(gates, 4, axis=-1)
        i, f, g, o = _sigmoid(xp, i), _sigmoid(xp, f), xp.tanh(g), _sigmoid(xp, o)
        c_new = f * c + i * g
        tc = xp.tanh(c_new)
        ctx.arrays = (i, f, g, o, c, tc)
        return o * tc, c_new                                       # (B, H) each

    @staticmethod
    def backward(ctx, grad_h, grad_c):
        if autograd.is_grad_enabled():  # create_graph: recompute as Tensor functions
            gates, c = ctx.saved_tensors
            i, f, g, o = chunk(gates, 4, axis=-1)
            i, f, g, o = sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)
            tc = tanh(f * c + i * g)
            gh, gc = grad_h, grad_c
            zero = 0.0
        elif ctx.be is not None:
            act, c, tc = ctx.arrays
            d_gates, d_c = ctx.be.lstm_cell_backward(
                act, c, tc, None if grad_h is None else grad_h.array,
                None if grad_c is None else grad_c.array)
            return Tensor._make(d_gates), Tensor._make(d_c)
        else:
            i, f, g, o, c, tc = ctx.arrays
            gh = None if grad_h is None else grad_h.array
            gc = None if grad_c is None else grad_c.array
            zero = c.dtype.type(0)
        d_gates, d_c = _lstm_pointwise_grad(i, f, g, o, c, tc, zero if gh is None else gh,
                                            zero if gc is None else gc)
        if not isinstance(d_gates, Tensor):
            d_gates, d_c = Tensor._make(d_gates), Tensor._make(d_c)
        return d_gates, d_c


def _gru_pointwise_grad(r, z, n, h, gh_n, grad, like):
    """Gradients of h' = (1 - z) n + z h, n = tanh(gi_n + r gh_n) w.r.t. gi, gh and h."""
    pre_n = grad * (1.0 - z) * (1.0 - n * n)
    pre_z = grad * (h - n) * z * (1.0 - z)
    pre_r = pre_n * gh_n * r * (1.0 - r)
    d_gi = _cat([pre_r, pre_z, pre_n], like)                       # (B, 3H)
    d_gh = _cat([pre_r, pre_z, pre_n * r], like)                   # (B, 3H)
    return d_gi, d_gh, grad * z


class _GRUPointwise(Function):
    """h' = (1 - z) n + z h with r, z = sigmoid(gi_{r,z} + gh_{r,z}),
    n = tanh(gi_n + r gh_n), given gi = W_ih x + b_ih and gh = W_hh h + b_hh (B, 3H)."""

    @staticmethod
    def forward(ctx, gi, gh, h):
        xp = ctx.xp
        i_r, i_z, i_n = xp.split(gi, 3, axis=-1)
        h_r, h_z, h_n = xp.split(gh, 3, axis=-1)
        r, z = _sigmoid(xp, i_r + h_r), _sigmoid(xp, i_z + h_z)
        n = xp.tanh(i_n + r * h_n)
        ctx.arrays = (r, z, n, h, h_n)
        ctx.save_for_backward(gi, gh, h)
        return (1.0 - z) * n + z * h

    @staticmethod
    def backward(ctx, grad):
        if autograd.is_grad_enabled():  # create_graph: recompute as Tensor functions
            gi, gh, h = ctx.saved_tensors
            i_r, i_z, i_n = chunk(gi, 3, axis=-1)
            h_r, h_z, h_n = chunk(gh, 3, axis=-1)
            r, z = sigmoid(i_r + h_r), sigmoid(i_z + h_z)
            n = tanh(i_n + r * h_n)
            out = _gru_pointwise_grad(r, z, n, h, h_n, grad, grad)
        else:
            r, z, n, h, h_n = ctx.arrays
            out = tuple(Tensor._make(a) for a in
                        _gru_pointwise_grad(r, z, n, h, h_n, grad.array, grad.array))
        return out


def lstm_cell(gates: Tensor, c: Tensor) -> tuple:
    """(h', c') of one LSTM step from the gate pre-activations (B, 4H) and the cell c (B, H);
    on the fused kernels when a backend applies (2-D float32/float64 inputs of one dtype)."""
    be = None
    if gates.ndim == 2 and c.ndim == 2 and gates.dtype == c.dtype and gates.numel() > 0 \
            and gates.shape[1] == 4 * c.shape[1] and gates.shape[0] == c.shape[0]:
        be = fast_backend(gates, c)
    return _LSTMPointwise.apply(gates, c, be=be)


def gru_cell(gi: Tensor, gh: Tensor, h: Tensor) -> Tensor:
    """h' of one GRU step from gi = W_ih x + b_ih, gh = W_hh h + b_hh (B, 3H) and h (B, H)."""
    return _GRUPointwise.apply(gi, gh, h)
