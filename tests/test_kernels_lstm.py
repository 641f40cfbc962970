"""Fused LSTM-cell pointwise kernels (tinylatent/kernels/numba/lstm.py) against their NumPy
reference twin, values and gradients, and the twin's backward against tinylatent's autograd
of the same cell written in Tensor ops, in float64."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinylatent as tl
from tinylatent.kernels.numba.lstm import (lstm_cell_backward, lstm_cell_backward_reference,
                                lstm_cell_forward, lstm_cell_forward_reference)

TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


def _inputs(seed, bsz, hid, dtype, scale):
    rng = np.random.default_rng(seed)
    gates = (rng.standard_normal((bsz, 4 * hid)) * scale).astype(dtype)
    c = rng.standard_normal((bsz, hid)).astype(dtype)
    gh = rng.standard_normal((bsz, hid)).astype(dtype)
    gc = rng.standard_normal((bsz, hid)).astype(dtype)
    return gates, c, gh, gc


@given(seed=st.integers(0, 2**31 - 1), bsz=st.integers(1, 6), hid=st.integers(1, 40),
       dtype=st.sampled_from([np.float32, np.float64]), scale=st.sampled_from([1.0, 30.0]),
       zero=st.sampled_from([None, "gh", "gc"]))
def test_kernel_matches_reference_values_and_gradients(seed, bsz, hid, dtype, scale, zero):
    gates, c, gh, gc = _inputs(seed, bsz, hid, dtype, scale)
    got = lstm_cell_forward(gates, c)
    ref = lstm_cell_forward_reference(gates, c)
    for name, a, b in zip(("h", "c", "act", "tanh_c"), got, ref):
        assert a.dtype == dtype and a.shape == b.shape, name
        np.testing.assert_allclose(a, b, **TOL[dtype], err_msg=name)
    gh = None if zero == "gh" else gh
    gc = None if zero == "gc" else gc
    _, _, act, tc = ref
    for name, a, b in zip(("dgates", "dc"), lstm_cell_backward(act, c, tc, gh, gc),
                          lstm_cell_backward_reference(act, c, tc, gh, gc)):
        assert a.dtype == dtype and a.shape == b.shape, name
        np.testing.assert_allclose(a, b, **TOL[dtype], err_msg=name)


@given(seed=st.integers(0, 2**31 - 1), bsz=st.integers(1, 4), hid=st.integers(1, 8))
def test_reference_backward_is_the_gradient_of_the_cell(seed, bsz, hid):
    gates, c, gh, gc = _inputs(seed, bsz, hid, np.float64, 2.0)
    gt, ct = tl.tensor(gates, requires_grad=True), tl.tensor(c, requires_grad=True)
    i, f, g, o = (gt[:, k * hid:(k + 1) * hid] for k in range(4))
    c_new = f.sigmoid() * ct + i.sigmoid() * g.tanh()
    h_new = o.sigmoid() * c_new.tanh()
    loss = (h_new * tl.tensor(gh)).sum() + (c_new * tl.tensor(gc)).sum()
    dg, dc = tl.grad(loss, [gt, ct])
    _, _, act, tc = lstm_cell_forward_reference(gates, c)
    ref_dg, ref_dc = lstm_cell_backward_reference(act, c, tc, gh, gc)
    np.testing.assert_allclose(ref_dg, dg.array, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ref_dc, dc.array, rtol=1e-10, atol=1e-12)


def test_saturated_gates_stay_finite():
    gates = np.array([[-1e4, 1e4, -1e4, 1e4]], np.float32)
    h, c, act, tc = lstm_cell_forward(gates, np.ones((1, 1), np.float32))
    assert np.all(np.isfinite(act)) and np.allclose(act, [[0, 1, -1, 1]])
    assert np.allclose(c, 1.0) and np.allclose(h, np.tanh(1.0))


def test_bad_shapes_name_the_kernel():
    with pytest.raises(ValueError, match="lstm_cell kernel"):
        lstm_cell_forward(np.zeros((2, 6), np.float32), np.zeros((2, 2), np.float32))
    with pytest.raises(TypeError, match="lstm_cell kernel"):
        lstm_cell_forward(np.zeros((2, 8), np.float32), np.zeros((2, 2), np.float64))
