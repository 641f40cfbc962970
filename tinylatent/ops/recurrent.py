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

    lstm_sequence(x, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse) -> (output, h_T, c_T):  a
        whole LSTM layer (one direction) over the T steps of x (T, B, in):
        gates_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh, then lstm_cell. One Function for
        the sequence on a kernel backend (see _LSTMSequence), else
        `lstm_sequence_reference`: one linear for the inputs, then a loop of per-step ops.
"""
from __future__ import annotations

from .. import autograd
from ..autograd import Function
from ..backend import array_module
from ..tensor import Tensor
from .linalg import linear
from .shape import chunk, stack, unbind
from .shape import cat as _tensor_cat
from .fast import fast_backend, reference_vjp
from .unary import sigmoid, tanh

__all__ = ["lstm_cell", "gru_cell", "lstm_sequence", "lstm_sequence_reference"]


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
        be = fast_backend(gates, c, op="lstm")
    return _LSTMPointwise.apply(gates, c, be=be)


def gru_cell(gi: Tensor, gh: Tensor, h: Tensor) -> Tensor:
    """h' of one GRU step from gi = W_ih x + b_ih, gh = W_hh h + b_hh (B, 3H) and h (B, H)."""
    return _GRUPointwise.apply(gi, gh, h)


# ---------------------------------------------------------------------- a whole LSTM layer
class _LSTMSequence(Function):
    """One direction of an LSTM layer over T steps (Hochreiter & Schmidhuber 1997; PyTorch's
    gate order i, f, g, o), on a kernel backend `be`:

        gates_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh            (B, 4H)
        (h_t, c_t) = lstm_cell(gates_t, c_{t-1}),  t = 1..T (T..1 when reversed)

    Forward: the input projection of all T steps is one GEMM (T*B, in) @ (in, 4H); then
    per step one GEMM (B, H) @ (H, 4H) and one fused pass (be.lstm_step, which adds both
    biases) writing the activated gates, c_t, tanh(c_t) and h_t into (T, ...) buffers.
    Backward through time, with dG_t = dL/d(gates_t):

        dh_{t-1} = dG_t W_hh  (+ dL/dh_{t-1} from the output)    per step, one GEMM
        dc_{t-1}, dG_t from dh_t, dc_t                            per step, be.lstm_step_backward
        dW_hh = sum_t dG_t^T h_{t-1} = dG^T H_prev                one GEMM over (T*B, .)
        dW_ih = dG^T X,   dx = dG W_ih                             one GEMM each
        db_ih = db_hh = sum over t and b of dG_t

    so the weight gradient is one (4H, T*B) @ (T*B, H) product instead of T products with
    K = B (35 products of K = 20 took ten times as long as the one product). The states are
    kept with their initial value at the boundary, hs (T+1, B, H) in time order, so
    h_{t-1} of every step is one contiguous slice. The input projection and dG live in
    reused scratch buffers (fresh (T*B, 4H) arrays cost page faults on every call). Under
    create_graph the backward differentiates `reference` (lstm_sequence_reference) on the
    same inputs, so every order of derivative is the reference's."""

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, *, be, reverse, reference):
        xp, dt = be.xp, x.dtype
        t_len, bsz, n_in = x.shape
        g4, hid = w_hh.shape
        gi = be.scratch("lstm_seq_gi", (t_len, bsz, g4), dt, like=x)
        be.matmul(be.c(x).reshape(t_len * bsz, n_in), w_ih.T,
                  out=gi.reshape(t_len * bsz, g4))                             # (T*B, 4H)
        bias = b_ih if b_hh is None else b_hh if b_ih is None else b_ih + b_hh  # (4H,)
        hs = xp.empty((t_len + 1, bsz, hid), dt)     # h_0 (or h_{T+1} reversed) .. h_T
        cs = xp.empty((t_len + 1, bsz, hid), dt)
        act = xp.empty((t_len, bsz, g4), dt)          # activated gates i, f, g, o
        tanh_c = xp.empty((t_len, bsz, hid), dt)
        prev, new = (1, 0) if reverse else (0, 1)     # state index offsets of step t
        start = t_len if reverse else 0
        hs[start] = h0
        cs[start] = c0
        w_t = be.c(w_hh.T)                            # (H, 4H): the per-step GEMM's B operand
        bias = None if bias is None else be.c(bias)
        hh = be.scratch("lstm_seq_hh", (bsz, g4), dt, like=x)
        for t in (range(t_len - 1, -1, -1) if reverse else range(t_len)):
            be.matmul(hs[t + prev], w_t, out=hh)                                # (B, 4H)
            be.lstm_step(gi[t], hh, bias, cs[t + prev], act[t], cs[t + new], tanh_c[t],
                         hs[t + new])
        out = hs[:t_len] if reverse else hs[1:]                                 # (T, B, H)
        end = 0 if reverse else t_len
        ctx.be, ctx.reverse, ctx.reference = be, reverse, reference
        ctx.arrays = (hs, cs, act, tanh_c)
        # out is saved so that changing it in place (it shares hs) fails the backward loudly
        ctx.save_for_backward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, out)
        return out, hs[end].copy(), cs[end].copy()

    @staticmethod
    def backward(ctx, g_out, g_hn, g_cn):
        inputs = ctx.saved_tensors[:7]
        if autograd.is_grad_enabled():
            return reference_vjp(ctx.reference, inputs, g_out, g_hn, g_cn)
        x, _, _, w_ih, w_hh = (t.array for t in inputs[:5])
        be, reverse, need = ctx.be, ctx.reverse, ctx.needs_input_grad
        xp = be.xp
        hs, cs, act, tanh_c = ctx.arrays
        t_len, bsz, g4 = act.shape
        hid, n_in = g4 // 4, x.shape[2]
        prev = 1 if reverse else 0
        d_gates = be.scratch("lstm_seq_dgates", act.shape, act.dtype, like=act)  # (T, B, 4H)
        dh = xp.zeros((bsz, hid), act.dtype) if g_hn is None else be.c(g_hn.array).copy()
        dc = xp.zeros((bsz, hid), act.dtype) if g_cn is None else be.c(g_cn.array).copy()
        gout = None if g_out is None else be.c(g_out.array)
        w = be.c(w_hh)                                # (4H, H)
        steps = range(t_len) if reverse else range(t_len - 1, -1, -1)
        for k, t in enumerate(steps):
            be.lstm_step_backward(act[t], cs[t + prev], tanh_c[t],
                                  None if gout is None else gout[t], dh, dc, d_gates[t])
            if k < t_len - 1 or need[1]:              # dh_{t-1}; the last one is dL/dh0
                be.matmul(d_gates[t], w, out=dh)                                # (B, H)
        dg2 = d_gates.reshape(t_len * bsz, g4)                                  # (T*B, 4H)
        grads = [None] * 7
        if need[0]:
            grads[0] = be.matmul(dg2, be.c(w_ih)).reshape(x.shape)             # (T, B, in)
        grads[1] = dh if need[1] else None
        grads[2] = dc if need[2] else None
        if need[3]:
            grads[3] = be.matmul(dg2.T, be.c(x).reshape(t_len * bsz, n_in))     # (4H, in)
        if need[4]:
            h_prev = hs[prev:prev + t_len].reshape(t_len * bsz, hid)            # (T*B, H)
            grads[4] = be.matmul(dg2.T, h_prev)                                 # (4H, H)
        if need[5] or need[6]:
            d_b = dg2.sum(axis=0)                                               # (4H,)
            grads[5] = d_b if need[5] else None
            grads[6] = (d_b.copy() if need[5] else d_b) if need[6] else None
        return tuple(None if g is None else Tensor._make(g) for g in grads)


def lstm_sequence_reference(x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor,
                            b_ih: Tensor | None = None, b_hh: Tensor | None = None,
                            reverse: bool = False) -> tuple:
    """lstm_sequence in Tensor ops: one linear for every step's input projection, then a
    loop of (the linear of W_hh, lstm_cell) per step. The test oracle, differentiable to any
    order."""
    t_len, bsz, n_in = x.shape
    gi = linear(x.reshape(t_len * bsz, n_in), w_ih, b_ih)                   # (T*B, 4H)
    steps = unbind(gi.reshape(t_len, bsz, gi.shape[1]), 0)   # T x (B, 4H), one op
    outs = [None] * t_len
    h, c = h0, c0
    for t in (range(t_len - 1, -1, -1) if reverse else range(t_len)):
        h, c = lstm_cell(steps[t] + linear(h, w_hh, b_hh), c)
        outs[t] = h
    return stack(outs, axis=0), h, c                # (T, B, H), (B, H), (B, H)


def lstm_sequence(x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor,
                  b_ih: Tensor | None = None, b_hh: Tensor | None = None,
                  reverse: bool = False) -> tuple:
    """(output (T, B, H), h_T, c_T) of one LSTM layer direction over the T steps of x
    (T, B, in), from the initial state h0, c0 (B, H) and nn.LSTM's weights w_ih (4H, in),
    w_hh (4H, H), b_ih, b_hh (4H,) or None; reverse runs from t = T to 1 (output[t] is
    still the state at time t). One Function (_LSTMSequence) on a kernel backend for
    float32/float64; otherwise (or with TINYLATENT_KERNELS=reference) the per-step reference."""
    if x.ndim != 3 or x.shape[0] < 1:
        raise ValueError(f"lstm_sequence: x must be (T, B, in) with T >= 1, got shape "
                         f"{tuple(x.shape)}")
    if w_hh.ndim != 2 or w_hh.shape[0] != 4 * w_hh.shape[1]:
        raise ValueError(f"lstm_sequence: w_hh must be (4H, H), got shape {tuple(w_hh.shape)}")
    t_len, bsz, n_in = x.shape
    g4, hid = w_hh.shape
    for name, t, shape in (("h0", h0, (bsz, hid)), ("c0", c0, (bsz, hid)),
                           ("w_ih", w_ih, (g4, n_in)), ("b_ih", b_ih, (g4,)),
                           ("b_hh", b_hh, (g4,))):
        if t is not None and tuple(t.shape) != shape:
            raise ValueError(f"lstm_sequence: {name} must have shape {shape} for x of shape "
                             f"{tuple(x.shape)} and w_hh of shape {tuple(w_hh.shape)}, got "
                             f"{tuple(t.shape)}")
    args = (x, h0, c0, w_ih, w_hh, b_ih, b_hh)
    dtypes = {str(t.dtype) for t in args if t is not None}
    if len(dtypes) > 1:
        raise TypeError(f"lstm_sequence: x, h0, c0 and the weights must share one dtype, got "
                        f"{', '.join(sorted(dtypes))}; cast with .to(dtype) first")
    be = fast_backend(*args, op="lstm") if x.numel() > 0 and hid > 0 else None
    if be is None:
        return lstm_sequence_reference(*args, reverse=reverse)
    return _LSTMSequence.apply(
        *args, be=be, reverse=bool(reverse),
        reference=lambda *a: lstm_sequence_reference(*a, reverse=bool(reverse)))
