"""Fused LSTM-cell pointwise kernels (tinylatent/kernels/numba/lstm.py) against their NumPy
reference twin, values and gradients, and the twin's backward against tinylatent's autograd
of the same cell written in Tensor ops, in float64. Then the sequence op
(tinylatent.ops.recurrent.lstm_sequence): its fused Function against the per-step reference,
gradchecked against float64 central differences, its double backward (through the
reference), and nn.LSTM on it."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinylatent as tl
from tinylatent import kernels
from tinylatent.kernels.numba.lstm import (lstm_cell_backward, lstm_cell_backward_reference,
                                           lstm_cell_forward, lstm_cell_forward_reference,
                                           lstm_step, lstm_step_backward,
                                           lstm_step_backward_reference, lstm_step_reference)
from tinylatent.ops.recurrent import lstm_sequence, lstm_sequence_reference

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



# ---------------------------------------------------------------------- sequence step kernels
@given(seed=st.integers(0, 2**31 - 1), bsz=st.integers(1, 6), hid=st.integers(1, 40),
       dtype=st.sampled_from([np.float32, np.float64]), scale=st.sampled_from([1.0, 30.0]),
       bias=st.booleans(), gout=st.booleans())
def test_step_kernels_match_reference(seed, bsz, hid, dtype, scale, bias, gout):
    """lstm_step (gates = gi + hh + bias, written into given buffers) and lstm_step_backward
    (dL/dh' = gout + dh, dc updated in place) against their NumPy twins."""
    rng = np.random.default_rng(seed)
    gi, hh = ((rng.standard_normal((bsz, 4 * hid)) * scale).astype(dtype) for _ in range(2))
    b = rng.standard_normal(4 * hid).astype(dtype) if bias else None
    c, go, dh, dc = (rng.standard_normal((bsz, hid)).astype(dtype) for _ in range(4))
    go = go if gout else None
    act = np.full((bsz, 4 * hid), np.nan, dtype)
    c_new, tanh_c, h_new = (np.full((bsz, hid), np.nan, dtype) for _ in range(3))
    lstm_step(gi, hh, b, c, act, c_new, tanh_c, h_new)
    ref = lstm_step_reference(gi, hh, b, c)
    for name, a, want in zip(("h", "c", "act", "tanh_c"), (h_new, c_new, act, tanh_c), ref):
        np.testing.assert_allclose(a, want, **TOL[dtype], err_msg=name)
    dgates, dc_io = np.full((bsz, 4 * hid), np.nan, dtype), dc.copy()
    lstm_step_backward(act, c, tanh_c, go, dh, dc_io, dgates)
    ref_dg, ref_dc = lstm_step_backward_reference(act, c, tanh_c, go, dh, dc)
    np.testing.assert_allclose(dgates, ref_dg, **TOL[dtype], err_msg="dgates")
    np.testing.assert_allclose(dc_io, ref_dc, **TOL[dtype], err_msg="dc")


# ---------------------------------------------------------------------- the sequence op
def _seq_inputs(seed, t_len, bsz, hid, dtype, bias=True, n_in=3):
    """[x, h0, c0, w_ih, w_hh] (+ [b_ih, b_hh] with bias)."""
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal((t_len, bsz, n_in)), rng.standard_normal((bsz, hid)),
              rng.standard_normal((bsz, hid)), rng.standard_normal((4 * hid, n_in)),
              rng.standard_normal((4 * hid, hid)) * 0.5]
    if bias:
        arrays += [rng.standard_normal(4 * hid) * 0.5, rng.standard_normal(4 * hid) * 0.5]
    return [a.astype(dtype) for a in arrays]


def _run_seq(arrays, reverse, used, reference):
    """(outputs, gradients of every input) of lstm_sequence under the weighting of the
    outputs named in `used` ('out', 'h', 'c'), and the name of the Function that ran."""
    ts = [tl.tensor(a, requires_grad=True) for a in arrays]
    with kernels.use_reference() if reference else _nullcontext():
        outs = lstm_sequence(*ts, reverse=reverse)
        rng = np.random.default_rng(99)
        picked = [o for o, name in zip(outs, ("out", "h", "c")) if name in used]
        ws = [tl.tensor(rng.standard_normal(o.shape).astype(o.dtype)) for o in picked]
        grads = tl.grad(picked, ts, ws)
    return ([o.detach().numpy() for o in outs] + [g.numpy() for g in grads],
            outs[0].grad_fn.fn.__name__)


def _nullcontext():
    import contextlib
    return contextlib.nullcontext()


@given(seed=st.integers(0, 2**31 - 1), t_len=st.integers(1, 6), bsz=st.integers(1, 4),
       hid=st.integers(1, 9), n_in=st.integers(1, 5),
       dtype=st.sampled_from([np.float32, np.float64]), reverse=st.booleans(),
       bias=st.booleans(),
       used=st.sampled_from([("out",), ("h",), ("c",), ("out", "h", "c"), ("out", "c")]))
def test_sequence_op_matches_the_per_step_reference(seed, t_len, bsz, hid, n_in, dtype,
                                                    reverse, bias, used):
    """The fused Function (forward loop, backward through time with one GEMM per weight
    gradient) gives the per-step reference's outputs and gradients of x, h0, c0, w_ih, w_hh
    (and b_ih, b_hh); each output alone (the others' gradients absent) and together."""
    arrays = _seq_inputs(seed, t_len, bsz, hid, dtype, bias, n_in)
    fast, name = _run_seq(arrays, reverse, used, reference=False)
    ref, ref_name = _run_seq(arrays, reverse, used, reference=True)
    assert name == "_LSTMSequence" and ref_name != name
    rtol, atol = {np.float32: (2e-4, 2e-5), np.float64: (1e-10, 1e-12)}[dtype]
    for i, (a, b) in enumerate(zip(fast, ref)):
        assert a.dtype == dtype and a.shape == b.shape, i
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol * max(1.0, np.abs(b).max()),
                                   err_msg=f"result {i} (out, h, c, then input gradients)")


@given(seed=st.integers(0, 2**31 - 1), t_len=st.integers(1, 4), bsz=st.integers(1, 3),
       hid=st.integers(1, 3), reverse=st.booleans(), bias=st.booleans())
def test_sequence_op_gradcheck(seed, t_len, bsz, hid, reverse, bias):
    """First derivatives of the fused Function against float64 central differences."""
    ts = [tl.tensor(a, requires_grad=True)
          for a in _seq_inputs(seed, t_len, bsz, hid, np.float64, bias)]
    assert lstm_sequence(*ts)[0].grad_fn.fn.__name__ == "_LSTMSequence"
    assert tl.gradcheck(lambda *a: lstm_sequence(*a, reverse=reverse), ts)


def test_sequence_op_double_backward_goes_through_the_reference():
    """The fused backward computes numbers; under create_graph it differentiates the
    per-step reference instead, so second derivatives exist and are exact (gradgradcheck
    in float64), and equal the reference's own."""
    ts = [tl.tensor(a, requires_grad=True) for a in _seq_inputs(5, 3, 2, 2, np.float64)]
    assert tl.gradgradcheck(lambda *a: lstm_sequence(*a), ts)
    assert tl.gradgradcheck(lambda *a: lstm_sequence(*a, reverse=True), ts)

    def second(reference):
        with kernels.use_reference() if reference else _nullcontext():
            out, h, c = lstm_sequence(*ts)
            g = tl.grad([(out * out).sum() + (h * c).sum()], ts, create_graph=True)
            return [a.numpy() for a in tl.grad([sum((x * x).sum() for x in g)], ts)]
    for a, b in zip(second(False), second(True)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_sequence_output_changed_in_place_fails_the_backward():
    """The output shares the saved states (h_{t-1} of the dW_hh GEMM): changing it in place
    before backward is caught, not silently used."""
    ts = [tl.tensor(a, requires_grad=True) for a in _seq_inputs(1, 3, 2, 2, np.float64)]
    out, _, _ = lstm_sequence(*ts)
    loss = out.sum()
    with tl.no_grad():
        out.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


def test_sequence_op_bad_shapes_name_the_argument():
    x, h0, c0, w_ih, w_hh, b_ih, b_hh = (tl.tensor(a) for a in
                                         _seq_inputs(0, 2, 3, 4, np.float32))
    with pytest.raises(ValueError, match=r"lstm_sequence: x .* T >= 1"):
        lstm_sequence(x[:0], h0, c0, w_ih, w_hh, b_ih, b_hh)
    with pytest.raises(ValueError, match=r"lstm_sequence: x .* T >= 1"):
        lstm_sequence(x[0], h0, c0, w_ih, w_hh, b_ih, b_hh)
    with pytest.raises(ValueError, match=r"lstm_sequence: w_hh must be \(4H, H\)"):
        lstm_sequence(x, h0, c0, w_ih, w_hh[:15], b_ih, b_hh)
    with pytest.raises(ValueError, match=r"lstm_sequence: c0 must have shape \(3, 4\)"):
        lstm_sequence(x, h0, c0[:2], w_ih, w_hh, b_ih, b_hh)
    with pytest.raises(ValueError, match=r"lstm_sequence: w_ih must have shape \(16, 3\)"):
        lstm_sequence(x, h0, c0, w_ih[:, :2], w_hh, b_ih, b_hh)
    with pytest.raises(ValueError, match="lstm_sequence: b_hh"):
        lstm_sequence(x, h0, c0, w_ih, w_hh, b_ih, b_hh[:4])


def test_sequence_op_mixed_dtypes_are_refused():
    ts = [tl.tensor(a, requires_grad=True) for a in _seq_inputs(0, 2, 3, 4, np.float64)]
    assert lstm_sequence(*ts)[0].grad_fn.fn.__name__ == "_LSTMSequence"
    with pytest.raises(TypeError, match="lstm_sequence: .* one dtype, got float32, float64"):
        lstm_sequence(ts[0].float(), *ts[1:])


@pytest.mark.parametrize("bidirectional", [False, True])
def test_nn_lstm_runs_the_sequence_op_and_matches_the_reference(bidirectional):
    """nn.LSTM (2 layers, batch_first, initial state given) on the fused op against the
    same module under use_reference(): output, final states and every parameter gradient."""
    tl.manual_seed(0)
    lstm = tl.nn.LSTM(5, 6, num_layers=2, batch_first=True, bidirectional=bidirectional)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 7, 5)).astype(np.float32)
    dirs = 2 if bidirectional else 1
    h0, c0 = (rng.standard_normal((2 * dirs, 3, 6)).astype(np.float32) for _ in range(2))

    def run(reference):
        for p in lstm.parameters():
            p.grad = None
        xt = tl.tensor(x, requires_grad=True)
        with kernels.use_reference() if reference else _nullcontext():
            out, (h, c) = lstm(xt, (tl.tensor(h0), tl.tensor(c0)))
            ((out * out).sum() + h.sum() + (c * c).sum()).backward()
        return [out.detach().numpy(), h.detach().numpy(), c.detach().numpy(), xt.grad.numpy()] \
            + [p.grad.numpy() for p in lstm.parameters()], out
    fast, _ = run(False)
    ref, _ = run(True)
    out, _ = tl.nn.LSTM(5, 6)(tl.randn(4, 2, 5, requires_grad=True))
    assert out.grad_fn.fn.__name__ == "_LSTMSequence"
    for i, (a, b) in enumerate(zip(fast, ref)):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5, err_msg=str(i))
