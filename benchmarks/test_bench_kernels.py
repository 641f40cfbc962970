"""The hot-op kernels (issue 4) next to PyTorch CPU: NT-Xent, attention, two convolutions,
affine coupling; each forward + backward, float32, from identical inputs.

Every benchmark first asserts that tinylatent's fast path and PyTorch give the same output
and gradients. The goals (tinylatent / PyTorch) are the issue's table; they are reported,
never asserted. The fast path is what runs by default (Numba kernels + BLAS); set
TINYLATENT_KERNELS=reference to time the pure Tensor-op references instead.
"""
from __future__ import annotations

import numpy as np

import tinylatent as tl
from benchmarks.harness import assert_close, torch
from tinylatent.ops.attention import scaled_dot_product_attention
from tinylatent.ops.contrastive import nt_xent
from tinylatent.ops.conv import conv2d
from tinylatent.ops.coupling import affine_coupling


def _grads(*ts):
    return [t.grad for t in ts]


def _zero(*ts):
    for t in ts:
        t.grad = None


# ---------------------------------------------------------------------- NT-Xent
def test_nt_xent(bench):
    n, d, tau = bench.pick(quick=256, full=512), 128, 0.5
    z1_np, z2_np = (bench.rng.standard_normal((n, d)).astype(np.float32) for _ in range(2))
    z1, z2 = tl.tensor(z1_np, requires_grad=True), tl.tensor(z2_np, requires_grad=True)

    def tl_fn():
        _zero(z1, z2)
        loss = nt_xent(z1, z2, temperature=tau)
        loss.backward()
        return loss

    torch_fn = None
    if torch is not None:
        F = torch.nn.functional
        p1, p2 = torch.tensor(z1_np, requires_grad=True), torch.tensor(z2_np, requires_grad=True)
        eye = torch.eye(2 * n, dtype=torch.bool)
        target = (torch.arange(2 * n) + n) % (2 * n)

        def torch_fn():
            _zero(p1, p2)
            z = F.normalize(torch.cat([p1, p2]), dim=1)
            s = (z @ z.T / tau).masked_fill(eye, float("-inf"))
            loss = F.cross_entropy(s, target)
            loss.backward()
            return loss

    def check():
        assert_close(tl_fn(), torch_fn(), rtol=1e-5, atol=1e-5, name="loss")
        assert_close(_grads(z1, z2), _grads(p1, p2), rtol=1e-3, atol=1e-7, name="grads")

    bench.compare(f"NT-Xent {n}x{d} tau {tau} fwd+bwd", tl_fn, torch_fn, check=check,
                  group="kernels", goal=0.9)


# ---------------------------------------------------------------------- attention
def test_attention(bench):
    b, h, t, d = bench.pick(quick=8, full=32), 4, 64, 32
    arrays = [bench.rng.standard_normal((b, h, t, d)).astype(np.float32) for _ in range(3)]
    g_np = bench.rng.standard_normal((b, h, t, d)).astype(np.float32)
    q, k, v = (tl.tensor(a, requires_grad=True) for a in arrays)
    g = tl.tensor(g_np)

    def tl_fn():
        _zero(q, k, v)
        out = scaled_dot_product_attention(q, k, v)
        out.backward(g)
        return out

    torch_fn = None
    if torch is not None:
        F = torch.nn.functional
        pq, pk, pv = (torch.tensor(a, requires_grad=True) for a in arrays)
        pg = torch.from_numpy(g_np)

        def torch_fn():
            _zero(pq, pk, pv)
            out = F.scaled_dot_product_attention(pq, pk, pv)
            out.backward(pg)
            return out

    def check():
        assert_close(tl_fn(), torch_fn(), rtol=1e-4, atol=1e-5, name="output")
        assert_close(_grads(q, k, v), _grads(pq, pk, pv), rtol=1e-3, atol=1e-4,
                     name="grads (q, k, v)")

    bench.compare(f"attention B{b}xH{h}xT{t}xD{d} fwd+bwd", tl_fn, torch_fn, check=check,
                  group="kernels", goal=1.5)


# ---------------------------------------------------------------------- convolutions
def _conv_case(bench, name, c_in, c_out, hw, batch, input_grad, goal):
    x_np = bench.rng.standard_normal((batch, c_in, hw, hw)).astype(np.float32)
    bound = 1 / np.sqrt(c_in * 9)
    w_np = bench.rng.uniform(-bound, bound, (c_out, c_in, 3, 3)).astype(np.float32)
    b_np = bench.rng.uniform(-bound, bound, c_out).astype(np.float32)
    g_np = bench.rng.standard_normal((batch, c_out, hw, hw)).astype(np.float32)
    x = tl.tensor(x_np, requires_grad=input_grad)
    w, b = tl.tensor(w_np, requires_grad=True), tl.tensor(b_np, requires_grad=True)
    g = tl.tensor(g_np)
    leaves = (x, w, b) if input_grad else (w, b)

    def tl_fn():
        _zero(*leaves)
        y = conv2d(x, w, b, padding=1)
        y.backward(g)
        return y

    torch_fn = None
    if torch is not None:
        F = torch.nn.functional
        px = torch.tensor(x_np, requires_grad=input_grad)
        pw, pb = torch.tensor(w_np, requires_grad=True), torch.tensor(b_np, requires_grad=True)
        pg = torch.from_numpy(g_np)
        pleaves = (px, pw, pb) if input_grad else (pw, pb)

        def torch_fn():
            _zero(*pleaves)
            y = F.conv2d(px, pw, pb, padding=1)
            y.backward(pg)
            return y

    def check():
        assert_close(tl_fn(), torch_fn(), rtol=1e-4, atol=1e-4, name="output")
        # grad w and grad b sum over B*H*W ~ 1e4-1e5 products: float32 summation order
        assert_close(_grads(*leaves), _grads(*pleaves), rtol=1e-3, atol=2e-2, name="grads")

    bench.compare(name, tl_fn, torch_fn, check=check, group="kernels", goal=goal)


def test_conv_32_64(bench):
    batch = bench.pick(quick=32, full=128)
    _conv_case(bench, f"conv 32->64 14x14 3x3 pad 1 B{batch} fwd+bwd", 32, 64, 14, batch,
               True, 2.0)


def test_conv_1_32(bench):
    # The first layer of an MNIST network: the input images need no gradient.
    batch = bench.pick(quick=32, full=128)
    _conv_case(bench, f"conv 1->32 28x28 3x3 pad 1 B{batch} fwd+bwd (input no grad)", 1, 32,
               28, batch, False, 0.7)


# ---------------------------------------------------------------------- coupling
def test_affine_coupling(bench):
    batch, dim = bench.pick(quick=64, full=256), 784
    x_np, ls_np, t_np, g_np = (bench.rng.standard_normal((batch, dim)).astype(np.float32)
                               for _ in range(4))
    ls_np *= 0.1
    gld_np = bench.rng.standard_normal(batch).astype(np.float32)
    x, ls, t = (tl.tensor(a, requires_grad=True) for a in (x_np, ls_np, t_np))
    g, gld = tl.tensor(g_np), tl.tensor(gld_np)

    def tl_fn():
        _zero(x, ls, t)
        y, ld = affine_coupling(x, ls, t)
        tl.autograd.backward([y, ld], [g, gld])
        return y, ld

    torch_fn = None
    if torch is not None:
        px, pls, pt = (torch.tensor(a, requires_grad=True) for a in (x_np, ls_np, t_np))
        pg, pgld = torch.from_numpy(g_np), torch.from_numpy(gld_np)

        def torch_fn():
            _zero(px, pls, pt)
            y = px * torch.exp(pls) + pt
            ld = pls.sum(dim=1)
            torch.autograd.backward([y, ld], [pg, pgld])
            return y, ld

    def check():
        assert_close(list(tl_fn()), list(torch_fn()), rtol=1e-5, atol=1e-4, name="(y, ld)")
        assert_close(_grads(x, ls, t), _grads(px, pls, pt), rtol=1e-5, atol=1e-5,
                     name="grads (x, log_s, t)")

    bench.compare(f"affine coupling B{batch}x{dim} fwd+bwd", tl_fn, torch_fn, check=check,
                  group="kernels", goal=1.0)
