"""Fused LayerNorm kernels (tinylatent/kernels/numba/layernorm.py) against their NumPy
reference twin, values and gradients, and the twin's backward against tinylatent's autograd
of the composite layer_norm (itself gradchecked) in float64."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinylatent as tl
from tinylatent.kernels.numba.layernorm import (layer_norm_backward, layer_norm_backward_reference,
                                     layer_norm_forward, layer_norm_forward_reference)

TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}


def _inputs(seed, lead, d, dtype, offset):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(lead + (d,)) * rng.uniform(0.1, 3) + offset).astype(dtype)
    w = rng.standard_normal(d).astype(dtype)
    b = rng.standard_normal(d).astype(dtype)
    gy = rng.standard_normal(x.shape).astype(dtype)
    return x, w, b, gy


@given(seed=st.integers(0, 2**31 - 1),
       lead=st.lists(st.integers(1, 5), min_size=0, max_size=2).map(tuple),
       d=st.integers(1, 70), dtype=st.sampled_from([np.float32, np.float64]),
       offset=st.sampled_from([0.0, 100.0]))
def test_kernel_matches_reference_values_and_gradients(seed, lead, d, dtype, offset):
    x, w, b, gy = _inputs(seed, lead, d, dtype, offset)
    y, mu, rstd = layer_norm_forward(x, w, b, 1e-5)
    y_ref, mu_ref, rstd_ref = layer_norm_forward_reference(x, w, b, 1e-5)
    assert y.dtype == dtype and y.shape == x.shape
    # At offset 100 in float32 both computations lose ~1e-3 to the rounding of x itself, so
    # the kernel is held to the float32 reference's own error against float64 ground truth.
    wide = tuple(a.astype(np.float64) for a in (x, w, b))
    y64 = layer_norm_forward_reference(*wide, 1e-5)[0]
    ref_err = float(np.abs(y_ref - y64).max()) if y.size else 0.0
    np.testing.assert_allclose(y, y64, rtol=0, atol=2 * ref_err + TOL[dtype]["atol"])
    np.testing.assert_allclose(y, y_ref, rtol=TOL[dtype]["rtol"],
                               atol=TOL[dtype]["atol"] * (1 + offset))
    np.testing.assert_allclose(mu, mu_ref, **TOL[dtype])
    np.testing.assert_allclose(rstd, rstd_ref, rtol=TOL[dtype]["rtol"] * (1 + offset / 10))
    gx, gw, gb = layer_norm_backward(gy, x, w, mu, rstd)
    refs = layer_norm_backward_reference(gy, x, w, mu_ref, rstd_ref)
    for name, got, ref in zip(("gx", "gw", "gb"), (gx, gw, gb), refs):
        assert got.dtype == dtype and got.shape == ref.shape, name
        scale = max(1.0, float(np.abs(ref).max()))
        np.testing.assert_allclose(got, ref, rtol=TOL[dtype]["rtol"] * (1 + offset / 10),
                                   atol=TOL[dtype]["atol"] * scale * (1 + offset), err_msg=name)


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 6), d=st.integers(2, 20))
def test_reference_backward_is_the_gradient_of_layer_norm(seed, n, d):
    x, w, b, gy = _inputs(seed, (n,), d, np.float64, 0.0)
    xt, wt, bt = (tl.tensor(a, requires_grad=True) for a in (x, w, b))
    y = tl.nn.functional.layer_norm(xt, (d,), wt, bt, eps=1e-5)
    gx, gw, gb = tl.grad((y * tl.tensor(gy)).sum(), [xt, wt, bt])
    _, mu, rstd = layer_norm_forward_reference(x, w, b, 1e-5)
    for got, want in zip(layer_norm_backward_reference(gy, x, w, mu, rstd), (gx, gw, gb)):
        np.testing.assert_allclose(got, want.array, rtol=1e-9, atol=1e-11)


def test_one_pass_statistics_survive_a_large_offset():
    # mean 1e4, spread 1: a naive E[x^2] - E[x]^2 loses every digit of the variance
    rng = np.random.default_rng(0)
    x = (1e4 + rng.standard_normal((8, 256))).astype(np.float32)
    w, b = np.ones(256, np.float32), np.zeros(256, np.float32)
    y, _, _ = layer_norm_forward(x, w, b)
    y_ref = layer_norm_forward_reference(x.astype(np.float64), w, b)[0]
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=5e-3)


def test_bad_shapes_name_the_kernel():
    x = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match="layer_norm kernel"):
        layer_norm_forward(x, np.ones(3, np.float32), np.zeros(4, np.float32))
    with pytest.raises(TypeError, match="layer_norm kernel"):
        layer_norm_forward(x.astype(np.int32), np.ones(4), np.zeros(4))


# ---------------------------------------------------------------------- the wired fast path
from tinylatent import kernels  # noqa: E402
from tinylatent.ops import normalization  # noqa: E402


def _wired(x, w, b, gy):
    """(y, gx, gw, gb) of tl.nn.functional.layer_norm over the last axis, as host arrays,
    and the name of the Function that made y."""
    xt, wt, bt = (tl.tensor(a, requires_grad=True) for a in (x, w, b))
    y = tl.nn.functional.layer_norm(xt, x.shape[-1:], wt, bt, eps=1e-5)
    grads = tl.grad([y], [xt, wt, bt], [tl.tensor(gy)])
    return [y.detach().numpy()] + [g.numpy() for g in grads], y.grad_fn.fn.__name__


@given(seed=st.integers(0, 2**31 - 1),
       lead=st.lists(st.integers(1, 5), min_size=1, max_size=2).map(tuple),
       d=st.integers(1, 70), dtype=st.sampled_from([np.float32, np.float64]))
def test_layer_norm_takes_the_fused_kernel_and_matches_the_reference(seed, lead, d, dtype):
    x, w, b, gy = _inputs(seed, lead, d, dtype, 0.0)
    fast, fn = _wired(x, w, b, gy)
    assert fn == "LayerNormFn"
    with kernels.use_reference():
        ref, ref_fn = _wired(x, w, b, gy)
    assert ref_fn != "LayerNormFn"
    for name, got, want in zip(("y", "gx", "gw", "gb"), fast, ref):
        assert got.dtype == dtype and got.shape == want.shape, name
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=TOL[dtype]["rtol"],
                                   atol=TOL[dtype]["atol"] * scale, err_msg=name)


def test_layer_norm_fast_path_second_derivatives_are_the_references():
    """Double backward through LayerNormFn differentiates the reference composite:
    gradgradcheck in float64 on the fast path."""
    rng = np.random.default_rng(3)
    x = tl.tensor(rng.standard_normal((3, 6)), requires_grad=True)
    w = tl.tensor(rng.standard_normal(6), requires_grad=True)
    b = tl.tensor(rng.standard_normal(6), requires_grad=True)
    assert normalization.layer_norm(x, 6, w, b).grad_fn.fn.__name__ == "LayerNormFn"
    assert tl.gradgradcheck(lambda x, w, b: normalization.layer_norm(x, 6, w, b), [x, w, b])


def test_layer_norm_without_affine_or_over_two_axes_uses_the_reference():
    x = tl.randn(2, 3, 4, requires_grad=True)
    assert normalization.layer_norm(x, 4).grad_fn.fn.__name__ != "LayerNormFn"
    w, b = tl.ones(3, 4, requires_grad=True), tl.zeros(3, 4, requires_grad=True)
    assert normalization.layer_norm(x, (3, 4), w, b).grad_fn.fn.__name__ != "LayerNormFn"
