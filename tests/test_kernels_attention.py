"""Scaled dot-product attention: the fused kernel against the reference (masks, dropout),
the reference against a NumPy oracle, gradchecks."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinylatent import kernels
import tinylatent as tl
from tinylatent.kernels.testing import assert_same, device_params, fast_name_expected, run_both
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
