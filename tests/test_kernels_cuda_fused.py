"""The CUDA twins of the fused LayerNorm, LSTM-cell and embedding-backward kernels
(tinylatent/kernels/cuda/layernorm.cu, lstm.cu, embedding.cu) against the NumPy reference twins,
and the float16 kernels (GELU, LayerNorm, attention, conv, logsumexp, NT-Xent, coupling, LSTM)
against the float32 reference.
Skipped without a GPU and CuPy (their sources are compiled by `nvcc -ptx` in
test_kernels_dispatch.py on any machine with nvcc, and run on the CPU through the emulation
in test_kernels_cuda_emu.py). They call the backend's own entry points (grids, argument
types and all), as the ops do."""
import numpy as np
import pytest

import tinylatent.kernels.cuda as kc
from tinylatent.kernels.numba.embedding import embedding_backward_reference
from tinylatent.kernels.numba.layernorm import (layer_norm_backward_reference,
                                                layer_norm_forward_reference)
from tinylatent.kernels.numba.lstm import (lstm_cell_backward_reference,
                                           lstm_cell_forward_reference,
                                           lstm_step_backward_reference, lstm_step_reference)

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not kc.available(), reason="needs a CUDA GPU with CuPy")]
DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows,d", [(1, 1), (5, 7), (64, 300), (3, 1025)])
def test_layer_norm_cuda_matches_reference(dtype, rows, d):
    cp = kc._cp()
    rng = np.random.default_rng(rows * d)
    x = (rng.standard_normal((rows, d)) * 2 + 50).astype(dtype)
    w, b, gy = (rng.standard_normal(s).astype(dtype) for s in (d, d, (rows, d)))
    xg, wg, bg, gyg = (cp.asarray(a) for a in (x, w, b, gy))
    y, mu, rstd = kc.layer_norm(xg, wg, bg, 1e-5)
    y_ref, mu_ref, rstd_ref = layer_norm_forward_reference(x, w, b, 1e-5)
    np.testing.assert_allclose(y.get(), y_ref, **TOL[dtype])
    refs = layer_norm_backward_reference(gy, x, w, mu_ref, rstd_ref)
    for got, ref in zip(kc.layer_norm_backward(gyg, xg, wg, mu, rstd), refs):
        np.testing.assert_allclose(got.get(), ref, rtol=TOL[dtype]["rtol"] * 10,
                                   atol=TOL[dtype]["atol"] * 10 * max(1, np.abs(ref).max()))


@pytest.mark.parametrize("dtype", DTYPES)
def test_lstm_cell_cuda_matches_reference(dtype):
    cp = kc._cp()
    rng = np.random.default_rng(0)
    bsz, hid = 20, 200
    gates = (rng.standard_normal((bsz, 4 * hid)) * 3).astype(dtype)
    c, gh, gc = (rng.standard_normal((bsz, hid)).astype(dtype) for _ in range(3))
    got = kc.lstm_cell(cp.asarray(gates), cp.asarray(c))
    ref = lstm_cell_forward_reference(gates, c)
    for g, want in zip(got, ref):
        np.testing.assert_allclose(g.get(), want, **TOL[dtype])
    back = kc.lstm_cell_backward(got[2], cp.asarray(c), got[3], cp.asarray(gh), cp.asarray(gc))
    for g, want in zip(back, lstm_cell_backward_reference(ref[2], c, ref[3], gh, gc)):
        np.testing.assert_allclose(g.get(), want, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [False, True])
def test_lstm_step_cuda_matches_reference(dtype, bias):
    """The sequence op's step kernels: gates = gi + hh (+ b_hh) into given buffers, and the
    backward with dL/dh' = gout + dh updating dc in place."""
    cp = kc._cp()
    rng = np.random.default_rng(2)
    bsz, hid = 20, 200
    gi, hh = ((rng.standard_normal((bsz, 4 * hid)) * 2).astype(dtype) for _ in range(2))
    b = rng.standard_normal(4 * hid).astype(dtype) if bias else None
    c, gout, dh, dc = (rng.standard_normal((bsz, hid)).astype(dtype) for _ in range(4))
    outs = [cp.empty((bsz, 4 * hid), dtype)] + [cp.empty((bsz, hid), dtype) for _ in range(3)]
    act, c_new, tanh_c, h_new = outs
    kc.lstm_step(cp.asarray(gi), cp.asarray(hh), None if b is None else cp.asarray(b),
                 cp.asarray(c), act, c_new, tanh_c, h_new)
    ref = lstm_step_reference(gi, hh, b, c)
    for g, want in zip((h_new, c_new, act, tanh_c), ref):
        np.testing.assert_allclose(g.get(), want, **TOL[dtype])
    dgates, dc_io = cp.empty((bsz, 4 * hid), dtype), cp.asarray(dc)
    kc.lstm_step_backward(act, cp.asarray(c), tanh_c, cp.asarray(gout), cp.asarray(dh), dc_io,
                          dgates)
    ref_back = lstm_step_backward_reference(ref[2], c, ref[3], gout, dh, dc)
    for g, want in zip((dgates, dc_io), ref_back):
        np.testing.assert_allclose(g.get(), want, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding_idx", [None, 3])
def test_embedding_backward_cuda_matches_np_add_at(dtype, padding_idx):
    cp = kc._cp()
    rng = np.random.default_rng(1)
    v, d = 50, 33
    idx = rng.integers(-v, v, (35, 20))
    gy = rng.standard_normal((35, 20, d)).astype(dtype)
    out = kc.embedding_backward(cp.asarray(idx), cp.asarray(gy), v, padding_idx)
    np.testing.assert_allclose(out.get(), embedding_backward_reference(idx, gy, v, padding_idx),
                               **TOL[dtype])


@pytest.mark.parametrize("half", ["float16", "bfloat16"])
@pytest.mark.parametrize("op", ["gelu", "layer_norm", "attention", "conv", "logsumexp",
                                "nt_xent", "coupling", "lstm"])
def test_half_ops_on_the_gpu_match_the_float32_reference(op, half):
    """The _f16 and _bf16 kernels on a real GPU (the same check the emulated suite makes):
    from 16-bit inputs, outputs and input gradients equal the float32 reference's within an
    ulp or two of the 16-bit type."""
    if half == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes", reason="bfloat16 needs ml_dtypes")
        half = ml_dtypes.bfloat16
    half = np.dtype(half)
    mant = 7 if half.name == "bfloat16" else 10      # stored mantissa bits
    import tinylatent as tl
    from tinylatent import kernels
    from tinylatent.ops import attention, contrastive, coupling, normalization, recurrent
    calls = {"gelu": (tl.gelu, [(3, 100)]),
             "layer_norm": (lambda x, w, b: normalization.layer_norm(x, (300,), w, b),
                            [(4, 300), (300,), (300,)]),
             "attention": (attention.scaled_dot_product_attention,
                           [(2, 70, 16), (2, 50, 16), (2, 50, 8)]),
             "conv": (lambda x, w, b: tl.nn.functional.conv2d(x, w, b, stride=2, padding=1),
                      [(2, 3, 9, 8), (5, 3, 3, 3), (5,)]),
             "logsumexp": (lambda x: tl.logsumexp(x, -1), [(3, 150)]),
             "nt_xent": (lambda a, b: contrastive.nt_xent(a, b, 0.2, "sum"), [(35, 3), (35, 3)]),
             "coupling": (lambda x, s_, t: coupling.affine_coupling(x, s_ * 0.3, t)[0],
                          [(3, 150)] * 3),
             "lstm": (lambda x, h, c, w1, w2: recurrent.lstm_sequence(x, h, c, w1 * 0.3,
                                                                     w2 * 0.1)[0],
                      [(7, 3, 5), (3, 70), (3, 70), (280, 5), (280, 70)])}
    call, shapes = calls[op]
    rng = np.random.default_rng(14)
    arrays = [rng.standard_normal(s).astype(half) for s in shapes]
    ts = [tl.tensor(a, device="cuda", requires_grad=True) for a in arrays]
    out = call(*ts)
    g = rng.standard_normal(out.shape).astype(half)
    fast = [out] + list(tl.grad([out], ts, [tl.tensor(g, device="cuda")]))
    with kernels.use_reference():
        ts = [tl.tensor(a.astype(np.float32), requires_grad=True) for a in arrays]
        out = call(*ts)
        ref = [out] + list(tl.grad([out], ts, [tl.tensor(g.astype(np.float32))]))
    for i, (a, r) in enumerate(zip(fast, ref)):
        a, r = a.detach().numpy(), r.detach().numpy()
        assert a.dtype == half
        np.testing.assert_allclose(a.astype(np.float32), r, rtol=2.0 ** (1 - mant),
                                   atol=np.abs(r).max() * 2.0 ** -mant, err_msg=f"{op} result {i}")
