"""The CUDA twins of the fused LayerNorm, LSTM-cell and embedding-backward kernels
(tinylatent/kernels/cuda/layernorm.cu, lstm.cu, embedding.cu) against the NumPy reference twins.
Skipped without a GPU and CuPy (their sources are compiled by `nvcc -ptx` in
test_kernels_dispatch.py on any machine with nvcc)."""
import numpy as np
import pytest

import tinylatent.kernels.cuda as kc
from tinylatent.kernels.numba.embedding import embedding_backward_reference
from tinylatent.kernels.numba.layernorm import (layer_norm_backward_reference,
                                                layer_norm_forward_reference)
from tinylatent.kernels.numba.lstm import (lstm_cell_backward_reference,
                                           lstm_cell_forward_reference)

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
    y = cp.empty_like(xg)
    mu, rstd = cp.empty(rows, cp.float64), cp.empty(rows, cp.float64)
    kc._kernel("layernorm.cu", "layer_norm_forward", dtype)(
        (rows,), (kc._THREADS,), (xg, wg, bg, np.float64(1e-5), y, mu, rstd, kc._i(d)))
    y_ref, mu_ref, rstd_ref = layer_norm_forward_reference(x, w, b, 1e-5)
    np.testing.assert_allclose(y.get(), y_ref, **TOL[dtype])
    gx = cp.empty_like(xg)
    gw, gb = cp.empty(d, dtype), cp.empty(d, dtype)
    kc._kernel("layernorm.cu", "layer_norm_backward", dtype)(
        (rows,), (kc._THREADS,), (gyg, xg, wg, mu, rstd, gx, kc._i(d)))
    kc._kernel("layernorm.cu", "layer_norm_param_grad", dtype)(
        kc._grid(d), (kc._THREADS,), (gyg, xg, mu, rstd, gw, gb, kc._i(rows), kc._i(d)))
    refs = layer_norm_backward_reference(gy, x, w, mu_ref, rstd_ref)
    for got, ref in zip((gx, gw, gb), refs):
        np.testing.assert_allclose(got.get(), ref, rtol=TOL[dtype]["rtol"] * 10,
                                   atol=TOL[dtype]["atol"] * 10 * max(1, np.abs(ref).max()))


@pytest.mark.parametrize("dtype", DTYPES)
def test_lstm_cell_cuda_matches_reference(dtype):
    cp = kc._cp()
    rng = np.random.default_rng(0)
    bsz, hid = 20, 200
    gates = (rng.standard_normal((bsz, 4 * hid)) * 3).astype(dtype)
    c, gh, gc = (rng.standard_normal((bsz, hid)).astype(dtype) for _ in range(3))
    gg, cg, ghg, gcg = (cp.asarray(a) for a in (gates, c, gh, gc))
    act, c_new, tc, h_new = (cp.empty_like(a) for a in (gg, cg, cg, cg))
    n = bsz * hid
    kc._kernel("lstm.cu", "lstm_cell_forward", dtype)(
        kc._grid(n), (kc._THREADS,), (gg, cg, act, c_new, tc, h_new, kc._i(bsz), kc._i(hid)))
    ref = lstm_cell_forward_reference(gates, c)
    for got, want in zip((h_new, c_new, act, tc), ref):
        np.testing.assert_allclose(got.get(), want, **TOL[dtype])
    dg, dc = cp.empty_like(gg), cp.empty_like(cg)
    kc._kernel("lstm.cu", "lstm_cell_backward", dtype)(
        kc._grid(n), (kc._THREADS,), (act, cg, tc, ghg, gcg, dg, dc, kc._i(bsz), kc._i(hid)))
    for got, want in zip((dg, dc), lstm_cell_backward_reference(ref[2], c, ref[3], gh, gc)):
        np.testing.assert_allclose(got.get(), want, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding_idx", [None, 3])
def test_embedding_backward_cuda_matches_np_add_at(dtype, padding_idx):
    cp = kc._cp()
    rng = np.random.default_rng(1)
    v, d = 50, 33
    idx = rng.integers(-v, v, (35, 20))
    gy = rng.standard_normal((35, 20, d)).astype(dtype)
    out = cp.zeros((v, d), dtype)
    n = idx.size
    kc._kernel("embedding.cu", "embedding_backward", dtype)(
        kc._grid(n * d), (kc._THREADS,),
        (cp.asarray(idx.reshape(-1).astype(np.int64)), cp.asarray(gy.reshape(-1, d)),
         np.int64(-1 if padding_idx is None else padding_idx), out, np.int64(n), kc._i(d),
         np.int64(v)))
    np.testing.assert_allclose(out.get(), embedding_backward_reference(idx, gy, v, padding_idx),
                               **TOL[dtype])
