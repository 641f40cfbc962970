"""Scaled dot-product attention: the fused kernel against the reference (masks, dropout),
the reference against a NumPy oracle, gradchecks."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinylatent import kernels
import tinylatent as tl
from tinylatent.kernels.testing import (assert_same, device_params, fast_name_expected,
                                       graph_functions, run_both)
from tinylatent.ops.attention import scaled_dot_product_attention as sdpa

DTYPES = [np.float32, np.float64]
MASKS = ["none", "causal", "bool", "float", "bool+causal"]


def numpy_attention(q, k, v, keep=None, fmask=None, scale=None):
    """softmax(q k^T scale + mask) v in float64; rows with nothing kept give 0."""
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ np.swapaxes(k, -1, -2) * scale
    if fmask is not None:
        s = s + fmask
    if keep is not None:
        s = np.where(keep, s, -np.inf)
    m = s.max(-1, keepdims=True)
    e = np.exp(s - np.where(np.isfinite(m), m, 0))
    tot = e.sum(-1, keepdims=True)
    p = np.divide(e, tot, out=np.zeros_like(e), where=tot > 0)
    return p @ v


@st.composite
def attention_cases(draw):
    batch = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))
    tq, tk = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    d, dv = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    mask = draw(st.sampled_from(MASKS))
    dropout = draw(st.sampled_from([0.0, 0.0, 0.3]))
    seed = draw(st.integers(0, 2**16))
    return batch, tq, tk, d, dv, mask, dropout, seed


def _masks(rng, batch, tq, tk, mask):
    attn_mask, causal = None, "causal" in mask
    if "bool" in mask:
        attn_mask = tl.tensor(rng.random(batch[:1] + (1,) * (len(batch) > 1) + (tq, tk)) > 0.3)
    elif mask == "float":
        attn_mask = tl.tensor(rng.standard_normal((tq, tk)))
    return attn_mask, causal


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25)
@given(case=attention_cases())
def test_attention_fast_matches_reference(device, dtype, case):
    batch, tq, tk, d, dv, mask, dropout, seed = case
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(batch + (t, n)).astype(dtype)
              for t, n in ((tq, d), (tk, d), (tk, dv))]
    attn_mask, causal = _masks(rng, batch, tq, tk, mask)
    if attn_mask is not None:
        attn_mask = attn_mask.to(device) if attn_mask.dtype == np.bool_ else \
            attn_mask.to(device).to(dtype)

    def f(q, k, v):  # the same generator seed on both runs: the same dropout mask
        return sdpa(q, k, v, attn_mask, dropout_p=dropout, is_causal=causal,
                    generator=tl.Generator(seed) if dropout else None)
    (fast, names), (ref, _) = run_both(f, arrays, device=device)
    if fast_name_expected(device):
        assert names[0] in ("AttentionFn", "Reshape")  # (N, Tq, Dv) reshaped to batch
    assert_same(fast, ref, dtype, f"attention mask={mask} dropout={dropout}")


@pytest.mark.parametrize("mask", MASKS)
def test_attention_reference_matches_numpy_and_masked_rows_are_zero(mask):
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 5, 3)),
               rng.standard_normal((2, 5, 2)))
    keep = np.ones((2, 4, 5), bool)
    fmask = None
    attn_mask = None
    if "causal" in mask:
        keep &= np.tril(np.ones((4, 5), bool))
    if "bool" in mask:
        m = rng.random((2, 4, 5)) > 0.4
        m[0, 1] = False          # a query that sees no key at all
        keep &= m
        attn_mask = tl.tensor(m)
    if mask == "float":
        fmask = rng.standard_normal((4, 5))
        attn_mask = tl.tensor(fmask)
    want = numpy_attention(q, k, v, keep, fmask)
    for forced in (False, True):
        with kernels.use_reference() if forced else _null():
            got = sdpa(tl.tensor(q), tl.tensor(k), tl.tensor(v), attn_mask,
                       is_causal="causal" in mask)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
    if "bool" in mask:
        assert np.all(got.numpy()[0, 1] == 0)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


@pytest.mark.parametrize("forced", [False, True])
def test_attention_gradcheck_and_double_backward(forced):
    rng = np.random.default_rng(4)
    q, k, v = (tl.tensor(rng.standard_normal(s), requires_grad=True)
               for s in ((2, 3, 4), (2, 5, 4), (2, 5, 3)))
    m = tl.tensor(rng.random((3, 5)) > 0.3)

    def f(q, k, v):
        return sdpa(q, k, v, m, dropout_p=0.25, generator=tl.Generator(7))
    with kernels.use_reference() if forced else _null():
        assert tl.gradcheck(f, [q, k, v])
        assert tl.gradgradcheck(lambda q, k, v: sdpa(q, k, v, is_causal=True), [q, k, v])


def test_attention_dropout_statistics_and_eval_identity():
    rng = np.random.default_rng(5)
    q = tl.tensor(rng.standard_normal((1, 64, 8)))
    v = tl.tensor(np.ones((1, 64, 8)))
    # With v = 1 every output entry is sum_j A_ij M_ij: mean 1 over the dropout draws.
    y = sdpa(q, q, v, dropout_p=0.5, generator=tl.Generator(0))
    assert abs(float(y.mean()) - 1.0) < 0.05
    y0 = sdpa(q, q, v)
    np.testing.assert_allclose(y0.numpy(), 1.0, rtol=1e-12)


def test_attention_broadcast_batch_falls_back_and_errors_are_clear():
    rng = np.random.default_rng(6)
    q = tl.tensor(rng.standard_normal((2, 3, 4)))
    k = tl.tensor(rng.standard_normal((1, 5, 4)))
    v = tl.tensor(rng.standard_normal((1, 5, 2)))
    got = sdpa(q, k, v)
    want = numpy_attention(q.numpy(), k.numpy(), v.numpy())
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    with pytest.raises(ValueError, match=r"scaled_dot_product_attention: query .* key .*"):
        sdpa(q, tl.randn(2, 5, 3).double(), v)
    with pytest.raises(ValueError, match=r"attn_mask of shape \(4, 4\) does not broadcast"):
        sdpa(q, k, v, attn_mask=tl.tensor(np.ones((4, 4), bool)))
    with pytest.raises(ValueError, match=r"dropout_p must be in \[0, 1\)"):
        sdpa(q, k, v, dropout_p=1.0)


# ---------------------------------------------------------------------- the flash path


def _flash_everywhere(monkeypatch):
    """The CPU takes the flash path at every size (it does from 2^26 scores by default)."""
    from tinylatent.ops import attention
    monkeypatch.setattr(attention, "FLASH_CPU_MIN_SCORES", 0)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(0, 3), tq=st.integers(0, 140),
       tk=st.integers(1, 9), d=st.integers(1, 5), dv=st.integers(1, 4), causal=st.booleans(),
       dtype=st.sampled_from(DTYPES))
def test_flash_kernel_matches_numpy(seed, n, tq, tk, d, dv, causal, dtype):
    """The CPU twin of flash_attention.cu (blocks of 128 queries: tq up to 140 spans two):
    out and the row log-sum-exp against float64 NumPy, gradients against the reference's
    autograd."""
    from tinylatent.kernels.numba.attention import flash_attention, flash_attention_backward
    rng = np.random.default_rng(seed)
    q, k = rng.standard_normal((n, tq, d)), rng.standard_normal((n, tk, d))
    v, g = rng.standard_normal((n, tk, dv)), rng.standard_normal((n, tq, dv))
    keep = np.tril(np.ones((tq, tk), bool)) if causal else None
    out, lse = flash_attention(*(a.astype(dtype) for a in (q, k, v)), 0.7, causal)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    assert out.dtype == lse.dtype == dtype
    want_out = numpy_attention(q, k, v, keep, scale=0.7) if n * tq else np.zeros((n, tq, dv))
    np.testing.assert_allclose(out, want_out, **tol)
    s = np.where(keep if keep is not None else True, q @ k.transpose(0, 2, 1) * 0.7, -np.inf)
    np.testing.assert_allclose(lse, np.log(np.exp(s).sum(-1)), **tol)
    qt, kt, vt = (tl.tensor(a, requires_grad=True) for a in (q, k, v))
    with kernels.use_reference():
        y = sdpa(qt, kt, vt, is_causal=causal, scale=0.7)
    want = tl.grad([y], [qt, kt, vt], [tl.tensor(g)], allow_unused=True)
    got = flash_attention_backward(*(a.astype(dtype) for a in (q, k, v)), out, lse,
                                   g.astype(dtype), 0.7, causal)
    for name, a, b in zip("qkv", got, want):
        np.testing.assert_allclose(a, b.numpy(), err_msg=f"d{name}", **tol)


def test_flash_kernel_with_no_keys_gives_zeros():
    """Tk = 0: every row has no key: zero output, lse = -inf, zero gradients."""
    from tinylatent.kernels.numba.attention import flash_attention, flash_attention_backward
    q, k, v = np.ones((2, 3, 4)), np.ones((2, 0, 4)), np.ones((2, 0, 5))
    out, lse = flash_attention(q, k, v, 0.5, False)
    assert out.shape == (2, 3, 5) and not out.any() and (lse == -np.inf).all()
    dq, dk, dv = flash_attention_backward(q, k, v, out, lse, np.ones((2, 3, 5)), 0.5, False)
    assert not dq.any() and dk.shape == (2, 0, 4) and dv.shape == (2, 0, 5)


@pytest.mark.parametrize("causal", [False, True])
def test_flash_path_is_taken_and_matches_the_reference(monkeypatch, causal):
    _flash_everywhere(monkeypatch)
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in
              ((2, 3, 130, 4), (2, 3, 70, 4), (2, 3, 70, 6), (2, 3, 130, 6))]
    q, k, v = (tl.tensor(a, requires_grad=True) for a in arrays[:3])
    y = sdpa(q, k, v, is_causal=causal)
    assert "FlashAttentionFn" in graph_functions(y)
    grads = tl.grad([y], [q, k, v], [tl.tensor(arrays[3])])
    q2, k2, v2 = (tl.tensor(a, requires_grad=True) for a in arrays[:3])
    with kernels.use_reference():
        y2 = sdpa(q2, k2, v2, is_causal=causal)
    want = tl.grad([y2], [q2, k2, v2], [tl.tensor(arrays[3])])
    np.testing.assert_allclose(y.detach().numpy(), y2.detach().numpy(), rtol=1e-4, atol=1e-5)
    for a, b in zip(grads, want):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)
    # a mask or dropout keeps the materialised kernel
    mask = tl.tensor(rng.random((130, 70)) > 0.5)
    for y in (sdpa(q, k, v, attn_mask=mask), sdpa(q, k, v, dropout_p=0.1)):
        assert "AttentionFn" in graph_functions(y)
        assert "FlashAttentionFn" not in graph_functions(y)


def test_flash_path_gradcheck_and_double_backward(monkeypatch):
    _flash_everywhere(monkeypatch)
    rng = np.random.default_rng(2)
    q, k, v = (tl.tensor(rng.standard_normal(s), requires_grad=True)
               for s in ((2, 4, 3), (2, 5, 3), (2, 5, 2)))
    assert "FlashAttentionFn" in graph_functions(sdpa(q, k, v, is_causal=True))
    f = lambda q, k, v: sdpa(q, k, v, is_causal=True)   # noqa: E731
    assert tl.gradcheck(f, [q, k, v])
    assert tl.gradgradcheck(f, [q, k, v])


def test_flash_path_default_threshold_on_the_cpu():
    """Small attention keeps the materialised kernel; the CPU goes flash from 2^26 scores."""
    from tinylatent.ops import attention
    q = tl.randn(1, 8, 4, requires_grad=True)
    assert "AttentionFn" in graph_functions(sdpa(q, q, q))
    assert attention.FLASH_CPU_MIN_SCORES == 2 ** 26
