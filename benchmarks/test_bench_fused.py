"""The fused raw-array kernels of tinylatent/kernels/numba (layernorm.py, lstm.py,
embedding.py) next to PyTorch's ops on the same arrays, before they are wired into tl.nn:
what the fused pass costs without tinylatent's autograd around it. Each checks values and
gradients against PyTorch first (torch.autograd on the same inputs); timings are reported,
never asserted. Their wired-in counterparts are the LayerNorm, LSTM and Embedding rows of
test_bench_layers.py."""
from __future__ import annotations

import numpy as np

from benchmarks.harness import assert_close, torch
from tinylatent.kernels.numba.embedding import embedding_backward
from tinylatent.kernels.numba.layernorm import layer_norm_backward, layer_norm_forward
from tinylatent.kernels.numba.lstm import lstm_cell_backward, lstm_cell_forward


def test_layer_norm_kernel(bench):
    n = bench.pick(quick=1024, full=4096)
    x = (bench.rng.standard_normal((n, 256)) * 2 + 0.5).astype(np.float32)
    w, b = (bench.rng.standard_normal(256).astype(np.float32) for _ in range(2))
    gy = bench.rng.standard_normal((n, 256)).astype(np.float32)

    def tl_fn():
        y, mu, rstd = layer_norm_forward(x, w, b, 1e-5)
        return (y,) + layer_norm_backward(gy, x, w, mu, rstd)

    torch_fn = None
    if torch is not None:
        xt, wt, bt = (torch.from_numpy(a.copy()).requires_grad_() for a in (x, w, b))
        gt = torch.from_numpy(gy)

        def torch_fn():
            y = torch.nn.functional.layer_norm(xt, (256,), wt, bt, 1e-5)
            return (y,) + torch.autograd.grad(y, (xt, wt, bt), gt)

    bench.compare(f"LayerNorm kernel ({n}, 256) fwd+bwd, raw arrays", tl_fn, torch_fn,
                  group="fused kernels",
                  check=lambda: assert_close(list(tl_fn()), list(torch_fn()), rtol=1e-4,
                                             atol=1e-4, name="(y, gx, gw, gb)"))


def test_lstm_cell_kernel(bench):
    bsz, hid = 20, 200
    gates = (bench.rng.standard_normal((bsz, 4 * hid)) * 2).astype(np.float32)
    c, gh, gc = (bench.rng.standard_normal((bsz, hid)).astype(np.float32) for _ in range(3))

    def tl_fn():
        h, c_new, act, tc = lstm_cell_forward(gates, c)
        return (h, c_new) + lstm_cell_backward(act, c, tc, gh, gc)

    def torch_cell(a, c0):
        i, f, g, o = a.chunk(4, 1)
        c1 = torch.sigmoid(f) * c0 + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c1), c1

    torch_fn = None
    if torch is not None:
        at, ct = (torch.from_numpy(a.copy()).requires_grad_() for a in (gates, c))
        ght, gct = torch.from_numpy(gh), torch.from_numpy(gc)

        def torch_fn():
            h, c1 = torch_cell(at, ct)
            return (h, c1) + torch.autograd.grad((h, c1), (at, ct), (ght, gct))

    bench.compare(f"LSTM cell pointwise kernel (B={bsz}, H={hid}) fwd+bwd, raw arrays",
                  tl_fn, torch_fn, group="fused kernels",
                  check=lambda: assert_close(list(tl_fn()), list(torch_fn()), rtol=1e-5,
                                             atol=1e-6, name="(h, c, dgates, dc)"))


def test_embedding_backward_kernel(bench):
    idx = bench.rng.integers(0, 10000, (35, 20))
    gy = bench.rng.standard_normal((35, 20, 200)).astype(np.float32)

    def tl_fn():
        return embedding_backward(idx, gy, 10000)

    torch_fn = None
    if torch is not None:
        w = torch.zeros(10000, 200, requires_grad=True)
        it, gt = torch.from_numpy(idx), torch.from_numpy(gy)

        def torch_fn():
            return torch.autograd.grad(torch.nn.functional.embedding(it, w), w, gt)[0]

    bench.compare("Embedding backward kernel V=10000 d=200 (35, 20), raw arrays", tl_fn,
                  torch_fn, group="fused kernels",
                  check=lambda: assert_close(tl_fn(), torch_fn(), rtol=1e-5, atol=1e-6,
                                             name="grad weight"))
