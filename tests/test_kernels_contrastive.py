"""Row-wise logsumexp, InfoNCE and NT-Xent: fused kernels against the references, the
references against NumPy oracles, stability at logits +-1e4 and tau = 0.01, gradchecks."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinylatent import kernels
import tinylatent as tl
from tinylatent.kernels.testing import assert_same, device_params, fast_name_expected, run_both
from tinylatent.ops.contrastive import info_nce, logsumexp, nt_xent

DTYPES = [np.float32, np.float64]


def numpy_lse(x, axis=-1):
    m = x.max(axis, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis, keepdims=True))).squeeze(axis)


def numpy_nt_xent(z1, z2, tau):
    z = np.concatenate([z1, z2]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    s = z @ z.T / tau
    n2 = len(z)
    np.fill_diagonal(s, -np.inf)
    pos = s[np.arange(n2), (np.arange(n2) + n2 // 2) % n2]
    return np.mean(numpy_lse(s, 1) - pos)


def numpy_info_nce(q, k, tau):
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    k = k / np.linalg.norm(k, axis=1, keepdims=True)
    s = q @ k.T / tau
    return np.mean(numpy_lse(s, 1) - np.diag(s))


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


# ---------------------------------------------------------------------- logsumexp
@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25)
@given(shape=st.lists(st.integers(1, 7), min_size=1, max_size=3), keepdims=st.booleans(),
       scale=st.sampled_from([1.0, 30.0, 1e4]), seed=st.integers(0, 2**16))
def test_logsumexp_fast_matches_reference(device, dtype, shape, keepdims, scale, seed):
    x = (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)
    (fast, names), (ref, _) = run_both(lambda t: logsumexp(t, -1, keepdims), [x],
                                       device=device)
    if fast_name_expected(device):
        assert names == ["LogsumexpFn"]
    assert_same(fast, ref, dtype, "logsumexp", scale=scale)
    np.testing.assert_allclose(ref[0].reshape(-1), numpy_lse(x.astype(np.float64)).reshape(-1),
                               rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("forced", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_exact_and_finite_at_1e4(forced, dtype):
    x = tl.tensor(np.array([[1e4, -1e4, 0.0], [1e4, 1e4, -1e4], [-1e4, -1e4, -1e4]],
                           dtype=dtype), requires_grad=True)
    with kernels.use_reference() if forced else _null():
        y = logsumexp(x, 1)
        y.sum().backward()
    want = np.array([1e4, 1e4 + np.log(2.0), -1e4 + np.log(3.0)])
    np.testing.assert_allclose(y.detach().numpy(), want,
                               rtol=1e-7 if dtype == np.float32 else 1e-15)
    g = x.grad.numpy()
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, [[1, 0, 0], [0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3]],
                               rtol=1e-6, atol=1e-30)


def test_logsumexp_other_axes_use_reference_and_infinite_rows():
    x = tl.tensor(np.array([[-np.inf, -np.inf], [0.0, np.inf]]))
    np.testing.assert_array_equal(logsumexp(x, 1).numpy(), [-np.inf, np.inf])
    y = tl.randn(3, 4).double()
    np.testing.assert_allclose(logsumexp(y, 0).numpy(), numpy_lse(y.numpy(), 0), rtol=1e-12)


# ---------------------------------------------------------------------- NT-Xent / InfoNCE
@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=20)
@given(n=st.integers(1, 6), d=st.integers(1, 5), tau=st.sampled_from([0.01, 0.1, 0.5, 2.0]),
       reduction=st.sampled_from(["mean", "sum", "none"]), seed=st.integers(0, 2**16))
def test_nt_xent_and_info_nce_fast_match_reference(device, dtype, n, d, tau, reduction, seed):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal((n, d)).astype(dtype) for _ in range(2)]
    for fn, fast_name in ((nt_xent, "NTXentFn"), (info_nce, "InfoNCEFn")):
        def f(a, b):
            return fn(a, b, temperature=tau, reduction=reduction)
        (fast, names), (ref, _) = run_both(f, arrays, device=device)
        if fast_name_expected(device):
            assert names == [fast_name]
        # the loss and its gradients scale like 1/tau
        assert_same(fast, ref, dtype, f"{fast_name} tau={tau} {reduction}", scale=1 / tau)
    want = numpy_nt_xent(*[a.astype(np.float64) for a in arrays], tau)
    got = nt_xent(*[tl.tensor(a.astype(np.float64)) for a in arrays], temperature=tau)
    # the loss is a difference of terms of size ~1/tau and can cancel to ~1e-13 (n = 2,
    # tau = 0.01, seed 387: 1.4766e-13 vs 1.4744e-13, one ulp of 1.0 apart): an absolute
    # floor of float64 rounding at that scale, next to the relative bound
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-14 / tau)


@pytest.mark.parametrize("forced", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_contrastive_finite_at_tau_001(forced, dtype):
    rng = np.random.default_rng(2)
    z1 = rng.standard_normal((64, 16)).astype(dtype) * 100
    z2 = (z1 + 0.01 * rng.standard_normal((64, 16))).astype(dtype)
    a, b = tl.tensor(z1, requires_grad=True), tl.tensor(z2, requires_grad=True)
    with kernels.use_reference() if forced else _null():
        loss = nt_xent(a, b, temperature=0.01)
        loss2 = info_nce(a, b, temperature=0.01)
        (loss + loss2).backward()
    assert np.isfinite(loss.item()) and np.isfinite(loss2.item())
    assert np.all(np.isfinite(a.grad.numpy())) and np.all(np.isfinite(b.grad.numpy()))
    np.testing.assert_allclose(loss.item(), numpy_nt_xent(z1, z2, 0.01),
                               rtol=1e-4 if dtype == np.float32 else 1e-10, atol=1e-5)
    np.testing.assert_allclose(loss2.item(), numpy_info_nce(z1.astype(np.float64),
                                                            z2.astype(np.float64), 0.01),
                               rtol=1e-4 if dtype == np.float32 else 1e-10, atol=1e-5)


@pytest.mark.parametrize("forced", [False, True])
def test_contrastive_gradcheck_and_double_backward(forced):
    rng = np.random.default_rng(3)
    a, b = (tl.tensor(rng.standard_normal((4, 3)), requires_grad=True) for _ in range(2))
    x = tl.tensor(rng.standard_normal((3, 5)) * 3, requires_grad=True)
    with kernels.use_reference() if forced else _null():
        for fn in (lambda a, b: nt_xent(a, b, 0.3), lambda a, b: info_nce(a, b, None, 0.3),
                   lambda a, b: nt_xent(a, b, 0.5, "none")):
            assert tl.gradcheck(fn, [a, b])
            assert tl.gradgradcheck(fn, [a, b])
        assert tl.gradcheck(lambda x: logsumexp(x, -1), [x])
        assert tl.gradgradcheck(lambda x: logsumexp(x, -1, True), [x])


def test_info_nce_with_explicit_negatives():
    rng = np.random.default_rng(4)
    q, k = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    neg = rng.standard_normal((7, 3))
    nq = q / np.linalg.norm(q, axis=1, keepdims=True)
    nk = k / np.linalg.norm(k, axis=1, keepdims=True)
    nn_ = neg / np.linalg.norm(neg, axis=1, keepdims=True)
    logits = np.concatenate([(nq * nk).sum(1, keepdims=True), nq @ nn_.T], 1) / 0.2
    want = np.mean(numpy_lse(logits, 1) - logits[:, 0])
    got = info_nce(tl.tensor(q), tl.tensor(k), tl.tensor(neg), temperature=0.2)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    per = tl.tensor(np.repeat(neg[None], 5, axis=0))     # (N, M, D) per-query negatives
    got = info_nce(tl.tensor(q), tl.tensor(k), per, temperature=0.2)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    qt = tl.tensor(q, requires_grad=True)
    assert tl.gradcheck(lambda a: info_nce(a, tl.tensor(k), tl.tensor(neg), 0.2), [qt])


def test_contrastive_errors():
    a = tl.randn(4, 3)
    with pytest.raises(ValueError, match=r"nt_xent: z1 \(4, 3\) and z2 \(5, 3\)"):
        nt_xent(a, tl.randn(5, 3))
    with pytest.raises(ValueError, match=r"nt_xent: temperature must be a positive number"):
        nt_xent(a, a, temperature=0.0)
    with pytest.raises(ValueError, match=r"info_nce: reduction must be one of"):
        info_nce(a, a, reduction="avg")
    with pytest.raises(ValueError, match=r"info_nce: negative_keys must be \(M, 3\)"):
        info_nce(a, a, tl.randn(2, 2))
    with pytest.raises(TypeError, match=r"logsumexp: expected a floating tensor"):
        logsumexp(tl.tensor([1, 2, 3]))
