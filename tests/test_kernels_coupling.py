"""Affine coupling (RealNVP / Glow): the fused kernel against the reference, invertibility,
the log-determinant against a brute-force Jacobian, gradchecks."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinylatent import kernels
import tinylatent as tl
from tinylatent.kernels.testing import assert_same, device_params, fast_name_expected, run_both
from tinylatent.ops.coupling import affine_coupling, affine_coupling_inverse

DTYPES = [np.float32, np.float64]
shapes = st.tuples(st.integers(1, 5)).flatmap(
    lambda b: st.lists(st.integers(1, 6), min_size=0, max_size=3).map(lambda r: b + tuple(r)))


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("inverse", [False, True])
@settings(max_examples=20)
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_coupling_fast_matches_reference(device, dtype, inverse, shape, seed):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(shape).astype(dtype) for _ in range(3)]
    arrays[1] *= 0.5  # log_s
    fn = affine_coupling_inverse if inverse else affine_coupling
    (fast, names), (ref, _) = run_both(fn, arrays, device=device)
    if fast_name_expected(device):
        assert names == ["AffineCouplingFn", "AffineCouplingFn"]   # one node, two outputs
    assert_same(fast, ref, dtype, f"affine_coupling inverse={inverse}")


@settings(max_examples=15)
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_coupling_inverts_and_logdet_matches_jacobian(shape, seed):
    rng = np.random.default_rng(seed)
    x, log_s, t = (tl.tensor(rng.standard_normal(shape)) for _ in range(3))
    y, ld = affine_coupling(x, log_s, t)
    x_back, ld_inv = affine_coupling_inverse(y, log_s, t)
    np.testing.assert_allclose(x_back.numpy(), x.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ld.numpy() + ld_inv.numpy(), 0, atol=1e-12)
    # log|det dy/dx| of sample 0, from the full Jacobian of the map x0 -> y0
    j = tl.autograd.jacobian(lambda a: affine_coupling(a, log_s[:1], t[:1])[0], x[:1])
    n = int(np.prod(shape[1:]))
    jm = j.numpy().reshape(n, n)
    np.testing.assert_allclose(np.linalg.slogdet(jm)[1], ld.numpy()[0], rtol=1e-10,
                               atol=1e-10)


@pytest.mark.parametrize("forced", [False, True])
@pytest.mark.parametrize("inverse", [False, True])
def test_coupling_gradcheck_and_double_backward(forced, inverse):
    rng = np.random.default_rng(1)
    ts = [tl.tensor(rng.standard_normal((3, 2, 4)), requires_grad=True) for _ in range(3)]
    fn = affine_coupling_inverse if inverse else affine_coupling
    with kernels.use_reference() if forced else _null():
        assert tl.gradcheck(fn, ts)
        assert tl.gradgradcheck(fn, ts)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_coupling_errors():
    x = tl.randn(4, 3)
    with pytest.raises(ValueError, match=r"affine_coupling: x_a \(4, 3\), log_s \(4, 1\)"):
        affine_coupling(x, tl.randn(4, 1), tl.randn(4, 3))
    with pytest.raises(TypeError, match=r"affine_coupling_inverse: dtypes differ"):
        affine_coupling_inverse(x, x.double(), x)
    with pytest.raises(ValueError, match=r"needs a batch axis"):
        affine_coupling(tl.tensor(1.0), tl.tensor(1.0), tl.tensor(1.0))
