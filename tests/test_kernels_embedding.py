"""The embedding backward scatter-add kernel (tinylatent/kernels/numba/embedding.py) against its
np.add.at reference twin, and the twin against tinylatent's embedding gradient."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinylatent as tl
from tinylatent.kernels.numba.embedding import embedding_backward, embedding_backward_reference


@given(seed=st.integers(0, 2**31 - 1), v=st.integers(1, 30), d=st.integers(1, 40),
       shape=st.lists(st.integers(1, 6), min_size=1, max_size=3).map(tuple),
       dtype=st.sampled_from([np.float32, np.float64]), pad=st.booleans(),
       negative=st.booleans())
def test_kernel_matches_np_add_at(seed, v, d, shape, dtype, pad, negative):
    rng = np.random.default_rng(seed)
    idx = rng.integers(-v if negative else 0, v, shape)
    gy = rng.standard_normal(shape + (d,)).astype(dtype)
    padding_idx = int(rng.integers(0, v)) if pad else None
    got = embedding_backward(idx, gy, v, padding_idx)
    ref = embedding_backward_reference(idx, gy, v, padding_idx)
    assert got.dtype == dtype and got.shape == (v, d)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got, ref, **tol)


@given(seed=st.integers(0, 2**31 - 1), pad=st.sampled_from([None, 0, 3]))
def test_reference_is_the_gradient_of_the_lookup(seed, pad):
    rng = np.random.default_rng(seed)
    w = tl.tensor(rng.standard_normal((7, 5)), requires_grad=True)
    idx = rng.integers(0, 7, (4, 3))
    gy = rng.standard_normal((4, 3, 5))
    (gw,) = tl.grad((tl.nn.functional.embedding(idx, w, padding_idx=pad)
                     * tl.tensor(gy)).sum(), [w])
    np.testing.assert_allclose(embedding_backward_reference(idx, gy, 7, pad), gw.array,
                               rtol=1e-12, atol=1e-12)


def test_bad_input_names_the_kernel():
    with pytest.raises(TypeError, match="embedding_backward"):
        embedding_backward(np.zeros(3), np.zeros((3, 2)), 4)
    with pytest.raises(ValueError, match="embedding_backward"):
        embedding_backward(np.zeros(3, np.int64), np.zeros((2, 2)), 4)


# ---------------------------------------------------------------------- the wired fast path
@pytest.mark.parametrize("padding_idx", [None, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_embedding_backward_takes_the_kernel_and_equals_the_reference(dtype, padding_idx):
    """nn.Embedding's weight gradient through the wired Numba scatter-add equals the one
    through the reference (IndexAddZeros, np.add.at), repeated indices included."""
    from tinylatent import kernels
    rng = np.random.default_rng(2)
    idx = rng.integers(0, 11, (35, 20))                 # 700 lookups of 11 rows: many repeats
    gy = rng.standard_normal((35, 20, 6)).astype(dtype)

    def weight_grad():
        w = tl.tensor(rng.standard_normal((11, 6)).astype(dtype), requires_grad=True)
        y = tl.nn.functional.embedding(tl.tensor(idx), w, padding_idx=padding_idx)
        (g,) = tl.grad([y], [w], [tl.tensor(gy)])
        return g.numpy()

    fast = weight_grad()
    with kernels.use_reference():
        ref = weight_grad()
    np.testing.assert_allclose(fast, ref, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-5 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(fast, embedding_backward_reference(idx, gy, 11, padding_idx),
                               rtol=1e-5, atol=1e-5)
    if padding_idx is not None:
        assert not fast[padding_idx].any()


def test_embedding_double_backward_still_goes_through_the_reference():
    w = tl.tensor(np.random.default_rng(0).standard_normal((5, 3)), requires_grad=True)
    idx = tl.tensor(np.array([[0, 1, 1], [4, 0, 2]]))
    assert tl.gradgradcheck(lambda w: tl.nn.functional.embedding(idx, w) ** 2, [w])
