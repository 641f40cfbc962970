"""The fused GELU kernel (tinylatent/kernels/numba/activation.py) against its NumPy reference
twin (the exact erf), the twin's derivative against tinylatent's autograd of the composite,
and the wiring: tl.gelu runs GeluFn on the kernel, its gradients and second derivatives are
the reference's."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinylatent as tl
from tinylatent import kernels
from tinylatent.kernels.numba.activation import gelu_forward, gelu_forward_reference

# float32: Abramowitz & Stegun 7.1.26 for erf (|error| < 1.5e-7, so |y error| < ~1e-7 |x|)
TOL = {np.float32: dict(rtol=2e-6, atol=1e-6), np.float64: dict(rtol=1e-13, atol=1e-15)}


@given(seed=st.integers(0, 2**31 - 1),
       shape=st.lists(st.integers(0, 7), min_size=0, max_size=3).map(tuple),
       scale=st.sampled_from([0.1, 1.0, 4.0, 30.0]),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_kernel_matches_reference(seed, shape, scale, dtype):
    x = (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)
    y, d = gelu_forward(x)
    y_ref, d_ref = gelu_forward_reference(x)
    for name, got, want in (("y", y, y_ref), ("dydx", d, d_ref)):
        assert got.dtype == dtype and got.shape == x.shape, name
        np.testing.assert_allclose(got, want, err_msg=name, **TOL[dtype])


def test_kernel_edge_values_match_reference():
    for dtype in (np.float32, np.float64):
        x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30, 1e-30, -6.0, 6.0], dtype)
        with np.errstate(all="ignore"):
            want = gelu_forward_reference(x)
        for got, ref in zip(gelu_forward(x), want):
            np.testing.assert_allclose(got, ref, equal_nan=True, **TOL[dtype])


def test_kernel_rejects_integers():
    with pytest.raises(TypeError, match="gelu kernel: x must be float32 or float64"):
        gelu_forward(np.arange(3))


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 20))
def test_reference_derivative_is_the_gradient_of_the_composite(seed, n):
    x = np.random.default_rng(seed).standard_normal(n) * 3
    xt = tl.tensor(x, requires_grad=True)
    with kernels.use_reference():
        (g,) = tl.grad(tl.gelu(xt).sum(), [xt])
    np.testing.assert_allclose(gelu_forward_reference(x)[1], g.numpy(), rtol=1e-12, atol=1e-14)


@given(seed=st.integers(0, 2**31 - 1),
       shape=st.lists(st.integers(1, 6), min_size=0, max_size=3).map(tuple),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_gelu_takes_the_kernel_and_matches_the_reference(seed, shape, dtype):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)

    def run():
        xt = tl.tensor(x, requires_grad=True)
        y = tl.gelu(xt)
        (gx,) = tl.grad([y], [xt], [tl.tensor(gy)])
        return y.detach().numpy(), gx.numpy(), y.grad_fn.fn.__name__

    y, gx, fn = run()
    with kernels.use_reference():
        y_ref, gx_ref, ref_fn = run()
    assert fn == "GeluFn" and ref_fn != "GeluFn"
    for name, got, want in (("y", y, y_ref), ("gx", gx, gx_ref)):
        assert got.dtype == dtype and got.shape == want.shape, name
        np.testing.assert_allclose(got, want, err_msg=name, **TOL[dtype])


def test_gelu_fast_path_second_derivatives_are_the_references():
    x = tl.tensor(np.random.default_rng(0).standard_normal((3, 5)) * 2, requires_grad=True)
    assert tl.gelu(x).grad_fn.fn.__name__ == "GeluFn"
    assert tl.gradcheck(tl.gelu, [x])
    assert tl.gradgradcheck(tl.gelu, [x])
    # d2y/dx2 = phi(x) (2 - x^2), in closed form
    (g,) = tl.grad(tl.gelu(x).sum(), [x], create_graph=True)
    (h,) = tl.grad(g.sum(), [x])
    xv = x.detach().numpy()
    phi = np.exp(-0.5 * xv * xv) / np.sqrt(2 * np.pi)
    np.testing.assert_allclose(h.numpy(), phi * (2 - xv * xv), rtol=1e-12, atol=1e-14)


def test_gelu_tanh_and_integers_keep_their_paths():
    x = tl.randn(4, requires_grad=True)
    assert tl.gelu(x, approximate="tanh").grad_fn.fn.__name__ != "GeluFn"
    np.testing.assert_allclose(tl.gelu(tl.tensor([0, 1, -2])).numpy(),
                               gelu_forward_reference(np.array([0.0, 1.0, -2.0]))[0]
                               .astype(tl.get_default_dtype()), **TOL[np.float32])
