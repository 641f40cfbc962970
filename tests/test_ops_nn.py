"""The ops the layers are made of (moved into tinylatent/ops/ by issue 10): pooling
(ops/pooling.py), batch / layer / group normalization (ops/normalization.py), the embedding
lookup (ops/indexing.py), the LSTM and GRU step (ops/recurrent.py), matrix inverse and
log|det| (ops/linalg.py). Each against NumPy, with gradcheck and gradgradcheck."""
import numpy as np
import pytest
from hypothesis import strategies as st

import tinylatent as tl
import tinylatent.nn.functional as F
from tinylatent.ops import indexing, linalg, normalization, pooling, recurrent
from strategies import (OpCase, distinct_values, lay_out, layouts, op_table_tests, shapes,
                        tensors)


def _distinct(data, shape):
    """A float64 leaf without ties (max pooling's derivative is undefined at a tie)."""
    a = distinct_values(shape, seed=data.draw(st.integers(0, 2**16)), spacing=0.05)
    return tl.tensor(lay_out(a, data.draw(layouts)), requires_grad=True)


# ---------------------------------------------------------------------- pooling
def _windows(x, k, s, p, fill):
    """(B, C, Ho, Wo, k*k) windows of x padded with `fill`."""
    xp_ = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=fill)
    ho = (xp_.shape[2] - k) // s + 1
    wo = (xp_.shape[3] - k) // s + 1
    out = np.empty(x.shape[:2] + (ho, wo, k * k))
    for i in range(ho):
        for j in range(wo):
            out[:, :, i, j] = xp_[:, :, i * s:i * s + k, j * s:j * s + k].reshape(
                x.shape[:2] + (k * k,))
    return out


def _pool_draw(distinct: bool):
    def draw(data):
        k = data.draw(st.integers(1, 3))
        s = data.draw(st.integers(1, 2))
        p = data.draw(st.integers(0, k // 2))
        h, w = (data.draw(st.integers(k, 5)) for _ in range(2))
        shape = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)), h, w)
        x = _distinct(data, shape) if distinct else data.draw(tensors(shape))
        return [x], {"k": k, "s": s, "p": p}
    return draw


CASES = [
    OpCase("max_pool2d", lambda x, k, s, p: pooling.max_pool2d(x, k, s, p),
           lambda x, k, s, p: _windows(x, k, s, p, -np.inf).max(axis=-1), _pool_draw(True)),
    OpCase("avg_pool2d", lambda x, k, s, p: pooling.avg_pool2d(x, k, s, p),
           lambda x, k, s, p: _windows(x, k, s, p, 0.0).mean(axis=-1), _pool_draw(False)),
]


# ---------------------------------------------------------------------- normalization
def _standardize(x, axes, eps=1e-5):
    mu = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    return (x - mu) / np.sqrt(var + eps)


def _batch_norm_draw(data):
    shape = (data.draw(st.integers(2, 4)), data.draw(st.integers(1, 3))) + \
        data.draw(st.sampled_from([(), (3,), (2, 2)]))
    c = (shape[1],)
    return [data.draw(tensors(shape)), data.draw(tensors(c, lo=0.5, hi=2.0)),
            data.draw(tensors(c))]


def _batch_norm_ref(x, w, b):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    axes = (0,) + tuple(range(2, x.ndim))
    return _standardize(x, axes) * w.reshape(shape) + b.reshape(shape)


def _layer_norm_draw(data):
    shape = (data.draw(st.integers(1, 3)), data.draw(st.integers(2, 5)))
    return [data.draw(tensors(shape)), data.draw(tensors(shape[-1:], lo=0.5, hi=2.0)),
            data.draw(tensors(shape[-1:]))]


def _group_norm_draw(data):
    groups = data.draw(st.integers(1, 2))
    shape = (data.draw(st.integers(1, 2)), groups * data.draw(st.integers(1, 2)),
             data.draw(st.integers(2, 3)))
    c = (shape[1],)
    return [data.draw(tensors(shape)), data.draw(tensors(c, lo=0.5, hi=2.0)),
            data.draw(tensors(c))], {"groups": groups}


def _group_norm_ref(x, w, b, groups):
    n = x.shape[0]
    y = _standardize(x.reshape(n, groups, -1), (2,)).reshape(x.shape)
    return y * w.reshape(1, -1, 1) + b.reshape(1, -1, 1)


def _standardize_stats(x):
    """The three outputs of the standardization Function: xhat, batch mean, biased var."""
    return normalization._Standardize.apply(x, axes=(0,), eps=1e-5)


CASES += [
    OpCase("batch_norm_training",
           lambda x, w, b: normalization.batch_norm(x, None, None, w, b, training=True),
           _batch_norm_ref, _batch_norm_draw),
    OpCase("layer_norm", lambda x, w, b: normalization.layer_norm(x, x.shape[-1:], w, b),
           lambda x, w, b: _standardize(x, (-1,)) * w + b, _layer_norm_draw),
    OpCase("group_norm",
           lambda x, w, b, groups: normalization.group_norm(x, groups, w, b),
           _group_norm_ref, _group_norm_draw),
    OpCase("standardize_with_mean_and_var_outputs", _standardize_stats,
           lambda x: (_standardize(x, (0,)), x.mean(axis=0, keepdims=True),
                      x.var(axis=0, keepdims=True)),
           lambda data: [data.draw(tensors((data.draw(st.integers(2, 4)), 3)))]),
]


# ---------------------------------------------------------------------- embedding
def _embedding_draw(data):
    v, d = data.draw(st.integers(2, 5)), data.draw(st.integers(1, 3))
    idx = np.array(data.draw(st.lists(st.integers(0, v - 1), min_size=1, max_size=6)))
    return [data.draw(tensors((v, d)))], {"idx": idx}


# (padding_idx deliberately drops a row's gradient, so it is not a derivative to check:
# tests/test_nn_layers.py::test_embedding_lookup_and_padding_idx covers it.)
CASES += [
    OpCase("embedding", lambda w, idx: indexing.embedding(idx, w), lambda w, idx: w[idx],
           _embedding_draw),
]


# ---------------------------------------------------------------------- recurrent step
def _sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def _lstm_ref(gates, c):
    i, f, g, o = np.split(gates, 4, axis=-1)
    c_new = _sig(f) * c + _sig(i) * np.tanh(g)
    return _sig(o) * np.tanh(c_new), c_new


def _gru_ref(gi, gh, h):
    i_r, i_z, i_n = np.split(gi, 3, axis=-1)
    h_r, h_z, h_n = np.split(gh, 3, axis=-1)
    r, z = _sig(i_r + h_r), _sig(i_z + h_z)
    n = np.tanh(i_n + r * h_n)
    return (1 - z) * n + z * h


def _cell_draw(n_gates: int, n_inputs: int):
    def draw(data):
        b, hid = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
        gates = [data.draw(tensors((b, n_gates * hid))) for _ in range(n_inputs)]
        return gates + [data.draw(tensors((b, hid)))]
    return draw


CASES += [
    OpCase("lstm_cell", recurrent.lstm_cell, _lstm_ref, _cell_draw(4, 1)),
    OpCase("lstm_cell_only_c_used", lambda g, c: recurrent.lstm_cell(g, c)[1],
           lambda g, c: _lstm_ref(g, c)[1], _cell_draw(4, 1)),
    OpCase("gru_cell", recurrent.gru_cell, _gru_ref, _cell_draw(3, 2)),
]


# ---------------------------------------------------------------------- inverse, log|det|
def _square_draw(data):
    """Well-conditioned square matrices: 2 I plus entries in [-0.5, 0.5]."""
    n = data.draw(st.integers(1, 3))
    batch = data.draw(st.sampled_from([(), (2,)]))
    return [data.draw(tensors(batch + (n, n), lo=-0.5, hi=0.5))], {"n": n}


CASES += [
    OpCase("matrix_inverse", lambda a, n: linalg.matrix_inverse(a + 2 * tl.eye(n, dtype=a.dtype)),
           lambda a, n: np.linalg.inv(a + 2 * np.eye(n)), _square_draw),
    OpCase("logabsdet", lambda a, n: linalg.logabsdet(a + 2 * tl.eye(n, dtype=a.dtype)),
           lambda a, n: np.linalg.slogdet(a + 2 * np.eye(n))[1], _square_draw),
]



# ---------------------------------------------------------------------- Gumbel-softmax
def _gumbel_noise(shape, dtype, seed=0):
    """The Gumbel(0, 1) noise F.gumbel_softmax draws from Generator(seed)."""
    u = 1.0 - tl.rand(*shape, dtype=dtype, generator=tl.Generator(seed)).numpy()
    return -np.log(-np.log(u))


def _gumbel_ref(x, tau, dim):
    z = (x + _gumbel_noise(x.shape, x.dtype)) / tau
    e = np.exp(z - z.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def _gumbel_draw(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, max_side=4))
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    return [data.draw(tensors(shape))], {"dim": dim, "tau": data.draw(st.sampled_from(
        [0.5, 1.0, 2.0]))}


# ---------------------------------------------------------------------- instance norm, dropout2d
def _instance_norm_draw(data):
    shape = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3)),
             data.draw(st.integers(2, 3)), data.draw(st.integers(1, 3)))
    c = (shape[1],)
    return [data.draw(tensors(shape)), data.draw(tensors(c, lo=0.5, hi=2.0)),
            data.draw(tensors(c))]


def _instance_norm_ref(x, w, b):
    return _standardize(x, (2, 3)) * w.reshape(1, -1, 1, 1) + b.reshape(1, -1, 1, 1)


def _dropout2d_ref(x, p):
    mask = tl.random.dropout_mask(x.shape[:-2] + (1, 1), p, dtype=x.dtype,
                                  generator=tl.Generator(0)).numpy()
    return x * mask


def _dropout2d_draw(data):
    shape = data.draw(shapes(min_dims=3, max_dims=4))
    return [data.draw(tensors(shape))], {"p": data.draw(st.sampled_from([0.25, 0.5]))}


CASES += [
    OpCase("instance_norm", lambda x, w, b: F.instance_norm(x, weight=w, bias=b),
           _instance_norm_ref, _instance_norm_draw),
    OpCase("dropout2d", lambda x, p: F.dropout2d(x, p, generator=tl.Generator(0)),
           _dropout2d_ref, _dropout2d_draw, keeps_float32=False),
]

CASES += [
    # the noise is re-drawn from Generator(0) on every call, so the function is deterministic
    OpCase("gumbel_softmax", lambda x, dim, tau: F.gumbel_softmax(
        x, tau=tau, dim=dim, generator=tl.Generator(0)), _gumbel_ref, _gumbel_draw,
        keeps_float32=False),    # float32 and float64 draw different noise
]
test_gradcheck, test_gradgradcheck = op_table_tests(CASES, gradgrad_examples=5)


def test_gumbel_softmax_hard_is_one_hot_with_the_soft_gradient():
    x = tl.randn(5, 7, dtype=tl.float64, requires_grad=True)
    soft = F.gumbel_softmax(x, tau=0.5, generator=tl.Generator(3))
    hard = F.gumbel_softmax(x, tau=0.5, hard=True, generator=tl.Generator(3))
    h = hard.detach().numpy()
    assert set(np.unique(h)) <= {0.0, 1.0} and np.all(h.sum(-1) == 1)
    np.testing.assert_array_equal(h.argmax(-1), soft.detach().numpy().argmax(-1))
    w = tl.randn(5, 7, dtype=tl.float64)
    (g_soft,) = tl.grad((soft * w).sum(), [x])
    (g_hard,) = tl.grad((hard * w).sum(), [x])       # straight-through: the soft gradient
    np.testing.assert_allclose(g_hard.numpy(), g_soft.numpy(), rtol=1e-12)
    # samples follow Categorical(softmax(logits)): Gumbel-max (Gumbel 1954)
    logits = tl.tensor([0.0, 1.0, 2.0], dtype=tl.float64).expand(20000, 3)
    counts = F.gumbel_softmax(logits, hard=True, generator=tl.Generator(1)).sum(0).numpy()
    p = np.exp([0.0, 1.0, 2.0]) / np.exp([0.0, 1.0, 2.0]).sum()
    assert np.all(np.abs(counts / 20000 - p) < 4 * np.sqrt(p * (1 - p) / 20000)), counts
    with pytest.raises(ValueError, match="tau must be positive"):
        F.gumbel_softmax(x, tau=0.0)
