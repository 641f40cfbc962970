"""Recurrent cells and layers: RNN (tanh / relu), LSTM (Hochreiter & Schmidhuber 1997),
GRU (Cho et al. 2014), with PyTorch's gate order, parameter names and init so state dicts
and outputs are comparable with torch.nn.

LSTM, gates stacked [i, f, g, o] in weight_ih (4H, in) and weight_hh (4H, H):
    i, f, o = sigmoid(.), g = tanh(.)   of   W_ih x + b_ih + W_hh h + b_hh
    c' = f * c + i * g,   h' = o * tanh(c')
GRU, gates stacked [r, z, n]:
    r, z = sigmoid(W_i{r,z} x + b_i{r,z} + W_h{r,z} h + b_h{r,z})
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),   h' = (1 - z) * n + z * h
Every weight and bias starts U(-1/sqrt(H), 1/sqrt(H)).

The layers loop over time steps (see _run_direction); an LSTM layer's loop is one op.
"""
from __future__ import annotations

import math

from .. import ops
from ..ops.recurrent import gru_cell, lstm_cell, lstm_sequence
from ..tensor import Tensor, empty, zeros
from . import functional as F
from . import init
from .module import Module, Parameter

__all__ = ["RNNCell", "LSTMCell", "GRUCell", "RNN", "LSTM", "GRU"]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _lstm_step(gi: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b_hh):
    """One LSTM step given gi = W_ih x + b_ih (B, 4H); the gate order is i, f, g, o."""
    gates = gi + F.linear(h, w_hh, b_hh)                          # (B, 4H)
    return lstm_cell(gates, c)                                     # h', c' (B, H) each


def _gru_step(gi: Tensor, h: Tensor, w_hh: Tensor, b_hh):
    """One GRU step given gi = W_ih x + b_ih (B, 3H); the gate order is r, z, n."""
    return gru_cell(gi, F.linear(h, w_hh, b_hh), h)


def _rnn_step(gi: Tensor, h: Tensor, w_hh: Tensor, b_hh, relu: bool):
    pre = gi + F.linear(h, w_hh, b_hh)
    return ops.relu(pre) if relu else ops.tanh(pre)


class _CellBase(Module):
    mode = "LSTM"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None,
                 dtype=None) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        g = _GATES[self.mode] * hidden_size
        self.weight_ih = Parameter(empty(g, input_size, dtype=dtype, device=device))
        self.weight_hh = Parameter(empty(g, hidden_size, dtype=dtype, device=device))
        if bias:
            self.bias_ih = Parameter(empty(g, dtype=dtype, device=device))
            self.bias_hh = Parameter(empty(g, dtype=dtype, device=device))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def _prep(self, x: Tensor) -> tuple[Tensor, bool]:
        name = type(self).__name__
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input must be (B, {self.input_size}) or "
                             f"({self.input_size},), got shape {tuple(x.shape)}")
        return (x.unsqueeze(0), True) if x.ndim == 1 else (x, False)

    def _zeros(self, x: Tensor) -> Tensor:
        return zeros(x.shape[0], self.hidden_size, dtype=x.dtype, device=x.device)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


def _check_lstm_state(name: str, hx) -> None:
    """An LSTM's state is the pair (h, c); one tensor (however shaped) is a mistake that
    unpacking would either reject obscurely or, for a leading axis of 2, accept wrongly."""
    if not isinstance(hx, (tuple, list)) or len(hx) != 2 or \
            not all(isinstance(t, Tensor) for t in hx):
        got = f"a tensor of shape {tuple(hx.shape)}" if isinstance(hx, Tensor) else \
            f"{type(hx).__name__} of length {len(hx)}" if isinstance(hx, (tuple, list)) else \
            type(hx).__name__
        raise TypeError(f"{name}: hx must be a tuple (h0, c0) of two tensors, got {got}")


class LSTMCell(_CellBase):
    """forward(x (B, in), (h, c) or None) -> (h', c'), each (B, hidden)."""
    mode = "LSTM"

    def forward(self, x: Tensor, hx=None):
        x, unbatched = self._prep(x)
        if hx is None:
            h, c = self._zeros(x), self._zeros(x)
        else:
            _check_lstm_state("LSTMCell", hx)
            h, c = (t.unsqueeze(0) if unbatched else t for t in hx)
        h, c = _lstm_step(F.linear(x, self.weight_ih, self.bias_ih), h, c, self.weight_hh,
                          self.bias_hh)
        return (h.squeeze(0), c.squeeze(0)) if unbatched else (h, c)


class GRUCell(_CellBase):
    """forward(x (B, in), h or None) -> h' (B, hidden)."""
    mode = "GRU"

    def forward(self, x: Tensor, hx=None):
        x, unbatched = self._prep(x)
        h = self._zeros(x) if hx is None else (hx.unsqueeze(0) if unbatched else hx)
        h = _gru_step(F.linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh,
                      self.bias_hh)
        return h.squeeze(0) if unbatched else h


class RNNCell(_CellBase):
    """h' = tanh(W_ih x + b_ih + W_hh h + b_hh) (or relu)."""
    mode = "RNN_TANH"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device=None, dtype=None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got "
                             f"'{nonlinearity}'")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, device, dtype)

    def forward(self, x: Tensor, hx=None):
        x, unbatched = self._prep(x)
        h = self._zeros(x) if hx is None else (hx.unsqueeze(0) if unbatched else hx)
        h = _rnn_step(F.linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh,
                      self.bias_hh, self.nonlinearity == "relu")
        return h.squeeze(0) if unbatched else h


class _RNNBase(Module):
    mode = "LSTM"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device=None, dtype=None,
                 nonlinearity: str = "tanh") -> None:
        super().__init__()
        name = type(self).__name__
        if num_layers < 1:
            raise ValueError(f"{name}: num_layers must be >= 1, got {num_layers}")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"{name}: dropout must be in [0, 1], got {dropout}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, dropout
        self.bidirectional = bidirectional
        self.nonlinearity = nonlinearity
        gates = _GATES[self.mode] * hidden_size
        dirs = 2 if bidirectional else 1
        self._names = []  # per (layer, direction): the parameter names
        for layer in range(num_layers):
            layer_in = input_size if layer == 0 else hidden_size * dirs
            for d in range(dirs):
                sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
                names = [f"weight_ih{sfx}", f"weight_hh{sfx}"]
                setattr(self, names[0], Parameter(empty(gates, layer_in, dtype=dtype,
                                                        device=device)))
                setattr(self, names[1], Parameter(empty(gates, hidden_size, dtype=dtype,
                                                        device=device)))
                if bias:
                    names += [f"bias_ih{sfx}", f"bias_hh{sfx}"]
                    setattr(self, names[2], Parameter(empty(gates, dtype=dtype,
                                                            device=device)))
                    setattr(self, names[3], Parameter(empty(gates, dtype=dtype,
                                                            device=device)))
                self._names.append(names)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def _weights(self, layer: int, d: int):
        names = self._names[layer * (2 if self.bidirectional else 1) + d]
        w_ih, w_hh = getattr(self, names[0]), getattr(self, names[1])
        b_ih, b_hh = (getattr(self, names[2]), getattr(self, names[3])) if self.bias \
            else (None, None)
        return w_ih, w_hh, b_ih, b_hh

    def _run_direction(self, x: Tensor, h: Tensor, c, weights, reverse: bool):
        """x (T, B, in) -> output (T, B, H), final h (and c).

        An LSTM is one op over the sequence (ops.recurrent.lstm_sequence: on a kernel
        backend one Function, with the input projection of all steps one GEMM and a backward
        through time whose weight gradients are one GEMM each). GRU and RNN: the input
        projection W_ih x_t + b_ih of all T steps is one GEMM, (T*B, in) @ (in, G*H), whose
        gradient is again one GEMM; only W_hh h_{t-1} must wait for the previous step.
        `unbind` hands the steps their rows of the projection as one op whose backward
        gathers the T gradients in one pass (indexing a step at a time would build a
        (T, B, G*H) zero gradient per step, O(T^2))."""
        w_ih, w_hh, b_ih, b_hh = weights
        if self.mode == "LSTM":
            return lstm_sequence(x, h, c, w_ih, w_hh, b_ih, b_hh, reverse)
        t_len, bsz = x.shape[0], x.shape[1]
        gi_all = F.linear(x.reshape(t_len * bsz, x.shape[2]), w_ih, b_ih)   # (T*B, G*H)
        gi_all = gi_all.reshape(t_len, bsz, gi_all.shape[1])                # (T, B, G*H)
        gis = ops.unbind(gi_all, 0)                                         # T x (B, G*H)
        steps = range(t_len - 1, -1, -1) if reverse else range(t_len)
        outs = [None] * t_len
        for t in steps:
            if self.mode == "GRU":
                h = _gru_step(gis[t], h, w_hh, b_hh)
            else:
                h = _rnn_step(gis[t], h, w_hh, b_hh, self.nonlinearity == "relu")
            outs[t] = h
        return ops.stack(outs, axis=0), h, c                                # (T, B, H)

    def forward(self, x: Tensor, hx=None):
        """x (T, B, in) (or (B, T, in) with batch_first, or unbatched (T, in)); hx is h0
        (or (h0, c0) for LSTM), each (num_layers * directions, B, H).
        Returns output (T, B, directions * H) and h_n (or (h_n, c_n))."""
        name = type(self).__name__
        unbatched = x.ndim == 2
        if unbatched:
            x = x.unsqueeze(1)
        elif x.ndim != 3:
            raise ValueError(f"{name}: input must be 3-D (T, B, in) or 2-D (T, in), got shape "
                             f"{tuple(x.shape)}")
        elif self.batch_first:
            x = x.transpose(0, 1)                                  # (T, B, in)
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input has {x.shape[-1]} features (shape "
                             f"{tuple(x.shape)}), expected input_size={self.input_size}")
        dirs = 2 if self.bidirectional else 1
        b = x.shape[1]
        state_shape = (self.num_layers * dirs, b, self.hidden_size)
        is_lstm = self.mode == "LSTM"
        if hx is None:
            h0 = zeros(state_shape, dtype=x.dtype, device=x.device)
            c0 = h0 if is_lstm else None
        else:
            if is_lstm:
                _check_lstm_state(name, hx)
            h0, c0 = hx if is_lstm else (hx, None)
            if unbatched:
                h0 = h0.unsqueeze(1)
                c0 = c0.unsqueeze(1) if c0 is not None else None
            for t, nm in ((h0, "h0"), (c0, "c0")):
                if t is not None and tuple(t.shape) != state_shape:
                    raise ValueError(f"{name}: {nm} must have shape {state_shape}, got "
                                     f"{tuple(t.shape)}")
        h_n, c_n = [], []
        layer_in = x                                                # (T, B, in)
        for layer in range(self.num_layers):
            outs = []
            for d in range(dirs):
                k = layer * dirs + d
                out, h, c = self._run_direction(layer_in, h0[k], c0[k] if is_lstm else None,
                                                self._weights(layer, d), reverse=d == 1)
                outs.append(out)                                    # (T, B, H)
                h_n.append(h)
                c_n.append(c)
            layer_in = outs[0] if dirs == 1 else ops.cat(outs, axis=-1)   # (T, B, dirs*H)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                layer_in = F.dropout(layer_in, self.dropout, True)
        output = layer_in                                           # (T, B, dirs*H)
        h_n = ops.stack(h_n, axis=0)                                # (layers*dirs, B, H)
        c_n = ops.stack(c_n, axis=0) if is_lstm else None
        if unbatched:
            output = output.squeeze(1)
            h_n = h_n.squeeze(1)
            c_n = c_n.squeeze(1) if is_lstm else None
        elif self.batch_first:
            output = output.transpose(0, 1)
        return output, ((h_n, c_n) if is_lstm else h_n)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class LSTM(_RNNBase):
    """Multi-layer LSTM; forward(x, (h0, c0)=None) -> (output, (h_n, c_n))."""
    mode = "LSTM"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device, dtype)


class GRU(_RNNBase):
    """Multi-layer GRU; forward(x, h0=None) -> (output, h_n)."""
    mode = "GRU"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device, dtype)


class RNN(_RNNBase):
    """Multi-layer Elman RNN with tanh (or relu); forward(x, h0=None) -> (output, h_n)."""
    mode = "RNN_TANH"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device=None,
                 dtype=None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got "
                             f"'{nonlinearity}'")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device, dtype, nonlinearity)
