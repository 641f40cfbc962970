"""Core engine benchmarks: per-op overhead, matmul, a 2-layer MLP training step.

These use only the core (Tensor, ops, autograd) so they run as soon as the engine exists;
the same MLP step through tl.nn / tl.optim is in test_bench_models.py.
"""
from __future__ import annotations

import contextlib

import numpy as np
import pytest

import tinylatent as tl
from benchmarks.harness import assert_close, torch


# ------------------------------------------------------------------------- per-op overhead
def _small_graph_arrays(rng):
    x = rng.standard_normal((8, 16)).astype(np.float32)
    w = (rng.standard_normal((16, 16)) * 0.25).astype(np.float32)
    b = (rng.standard_normal(16) * 0.1).astype(np.float32)
    return x, w, b


def _small_graph(lib, x, w, b):
    """Ten ops on (8, 16) tensors: what dominates is per-op bookkeeping, not arithmetic."""
    h = x @ w                      # 1  (8, 16)
    h = h + b                      # 2
    h = h.tanh()                   # 3
    h = h * x                      # 4
    h = h.sigmoid()                # 5
    h = h - 0.5                    # 6
    s = h * h                      # 7
    s = s.sum(1)                   # 8  (8,)
    s = s.exp()                    # 9
    return s.mean()                # 10 ()


def _small_graph_step(lib, params, mode=None):
    """One forward + backward of the small graph on `params` (x, w, b), grads reset first,
    inside the context manager `mode` if one is given (test_bench_anomaly.py)."""
    for p in params:
        p.grad = None
    with mode if mode is not None else contextlib.nullcontext():
        loss = _small_graph(lib, *params)
        loss.backward()
    return loss


def test_per_op_overhead(bench):
    x_np, w_np, b_np = _small_graph_arrays(bench.rng)
    xt, wt, bt = (tl.tensor(a, requires_grad=True) for a in (x_np, w_np, b_np))

    def tl_fn():
        return _small_graph_step(tl, (xt, wt, bt))

    torch_fn = None
    if torch is not None:
        xp, wp, bp = (torch.tensor(a, requires_grad=True) for a in (x_np, w_np, b_np))

        def torch_fn():
            return _small_graph_step(torch, (xp, wp, bp))

    def check():
        assert_close(tl_fn(), torch_fn(), rtol=1e-5, atol=1e-6, name="loss")
        assert_close([xt.grad, wt.grad, bt.grad], [xp.grad, wp.grad, bp.grad],
                     rtol=1e-4, atol=1e-6, name="grads (x, w, b)")

    fig = bench.compare("small graph fwd+bwd (10 ops, 8x16)", tl_fn, torch_fn, check=check,
                        group="core", goal=0.6)
    per_op = [f"tinylatent {fig['tl']['median'] / 10 * 1e6:.1f} µs"]
    if fig.get("torch"):
        per_op.append(f"PyTorch {fig['torch']['median'] / 10 * 1e6:.1f} µs")
    fig["notes"] = "per forward op, its backward included: " + ", ".join(per_op)


# ------------------------------------------------------------------------- matmul
@pytest.mark.parametrize("n", [64, 256, 1024])
def test_matmul(bench, n):
    if bench.quick and n > 256:
        pytest.skip("matmul 1024 runs in full mode only")
    a_np = bench.rng.standard_normal((n, n)).astype(np.float32)
    b_np = bench.rng.standard_normal((n, n)).astype(np.float32)
    a_tl, b_tl = tl.tensor(a_np), tl.tensor(b_np)
    torch_fn = None
    if torch is not None:
        a_pt, b_pt = torch.from_numpy(a_np), torch.from_numpy(b_np)

        def torch_fn():
            return a_pt @ b_pt

    def tl_fn():
        return a_tl @ b_tl

    tol = 1e-4 * np.sqrt(n)
    bench.compare(f"matmul {n}x{n} @ {n}x{n}", tl_fn, torch_fn, group="core",
                  check=lambda: assert_close(tl_fn(), torch_fn(), rtol=tol, atol=tol,
                                             name="a @ b"))


def test_matmul_backward(bench):
    n = bench.pick(quick=128, full=512)
    a_np = bench.rng.standard_normal((n, n)).astype(np.float32)
    b_np = bench.rng.standard_normal((n, n)).astype(np.float32)
    a_tl, b_tl = tl.tensor(a_np, requires_grad=True), tl.tensor(b_np, requires_grad=True)

    def tl_fn():
        a_tl.grad = b_tl.grad = None
        (a_tl @ b_tl).sum().backward()
        return a_tl.grad, b_tl.grad

    torch_fn = None
    if torch is not None:
        a_pt = torch.tensor(a_np, requires_grad=True)
        b_pt = torch.tensor(b_np, requires_grad=True)

        def torch_fn():
            a_pt.grad = b_pt.grad = None
            (a_pt @ b_pt).sum().backward()
            return a_pt.grad, b_pt.grad

    tol = 1e-4 * np.sqrt(n)
    bench.compare(f"matmul {n}x{n} fwd+bwd", tl_fn, torch_fn, group="core",
                  check=lambda: assert_close(list(tl_fn()), list(torch_fn()), rtol=tol,
                                             atol=tol, name="(grad a, grad b)"))


# ------------------------------------------------------------------------- MLP step
def _mlp_arrays(rng, batch=128, d_in=784, hidden=256, classes=10):
    x = rng.random((batch, d_in), dtype=np.float32)
    y = rng.integers(0, classes, batch)
    # Uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's default Linear init.
    params = []
    for fan_in, fan_out in ((d_in, hidden), (hidden, classes)):
        bound = 1.0 / np.sqrt(fan_in)
        params.append(rng.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32))
        params.append(rng.uniform(-bound, bound, fan_out).astype(np.float32))
    return x, y, params


def make_mlp_step_tl(x, y, params, lr=0.1):
    """A 2-layer MLP step on the core only: cross-entropy via log_softmax, plain SGD."""
    xt = tl.tensor(x)
    ps = [tl.tensor(p.copy(), requires_grad=True) for p in params]
    rows = np.arange(len(y))

    def step():
        w1, b1, w2, b2 = ps
        for p in ps:
            p.grad = None
        logits = (xt @ w1 + b1).relu() @ w2 + b2          # (B, classes)
        loss = -logits.log_softmax(axis=1)[rows, y].mean()
        loss.backward()
        with tl.no_grad():
            for p in ps:
                p.sub_(p.grad * lr)
        return loss

    return step, ps


def make_mlp_step_torch(x, y, params, lr=0.1):
    xt = torch.from_numpy(x)
    yt = torch.from_numpy(y)
    ps = [torch.tensor(p.copy(), requires_grad=True) for p in params]

    def step():
        w1, b1, w2, b2 = ps
        for p in ps:
            p.grad = None
        logits = torch.relu(xt @ w1 + b1) @ w2 + b2
        loss = torch.nn.functional.cross_entropy(logits, yt)
        loss.backward()
        with torch.no_grad():
            for p in ps:
                p.sub_(p.grad * lr)
        return loss

    return step, ps


def _mlp_data():
    return _mlp_arrays(np.random.default_rng(0))


def mlp_step_tl_factory():
    return make_mlp_step_tl(*_mlp_data())[0]


def mlp_step_torch_factory():
    return make_mlp_step_torch(*_mlp_data())[0]


def test_mlp_training_step(bench):
    x, y, params = _mlp_arrays(bench.rng)
    tl_step, tl_params = make_mlp_step_tl(x, y, params)
    torch_step = None
    if torch is not None:
        torch_step, pt_params = make_mlp_step_torch(x, y, params)

    def check():
        # Two steps from identical weights: losses and updated weights agree.
        for i in range(2):
            assert_close(tl_step(), torch_step(), rtol=1e-5, atol=1e-6, name=f"loss {i}")
        assert_close(tl_params, pt_params, rtol=1e-4, atol=1e-6, name="weights after 2 steps")

    bench.compare("MLP 784-256-10 step (B=128, SGD, core ops)", tl_step, torch_step,
                  check=check, group="core",
                  memory=(mlp_step_tl_factory, mlp_step_torch_factory))
