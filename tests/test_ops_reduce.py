"""Reductions (tinylatent/ops/reduce.py): sum mean var std max min logsumexp softmax
log_softmax cumsum and the values of sort/topk, against NumPy/SciPy, with gradcheck and
gradgradcheck over drawn shapes, axes (int, negative, tuple, None), keepdims and layouts."""
import numpy as np
import pytest
import scipy.special as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import tinylatent as tl
from strategies import (OpCase, case_id, check_forward, distinct_values, layouts, leaf,
                        shapes, tensors)


def _reduction(min_side: int = 1, distinct: bool = False, allow_tuple: bool = True,
               allow_none: bool = True, keepdims: bool = True):
    """Draw (x, {axis, keepdims}); min_side=2 makes every reduced axis hold >= 2 entries."""
    def draw(data):
        shape = data.draw(shapes(1, 4, min_side, 3))
        axis = data.draw(_axis_for(shape, allow_none, allow_tuple))
        if distinct:
            x = leaf(distinct_values(shape, data.draw(st.integers(0, 2**31 - 1))),
                     data.draw(layouts))
        else:
            x = data.draw(tensors(shape))
        kw = {"axis": axis}
        if keepdims:
            kw["keepdims"] = data.draw(st.booleans())
        return [x], kw
    return draw


def _axis_for(shape, allow_none: bool, allow_tuple: bool):
    nd = len(shape)
    choices = [st.integers(-nd, nd - 1)]
    if allow_none:
        choices.append(st.none())
    if allow_tuple:
        choices.append(st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd,
                                unique=True).map(tuple))
    return st.one_of(*choices)


def _topk():
    def draw(data):
        shape = data.draw(shapes(1, 3))
        axis = data.draw(st.integers(-len(shape), len(shape) - 1))
        k = data.draw(st.integers(1, shape[axis]))
        x = leaf(distinct_values(shape, data.draw(st.integers(0, 2**31 - 1))),
                 data.draw(layouts))
        return [x], {"k": k, "axis": axis, "largest": data.draw(st.booleans())}
    return draw


def _topk_ref(x, k, axis, largest):
    s = -np.sort(-x, axis=axis) if largest else np.sort(x, axis=axis)
    return np.take(s, np.arange(k), axis=axis)


def _sort_draw(data):
    shape = data.draw(shapes(1, 3))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = leaf(distinct_values(shape, data.draw(st.integers(0, 2**31 - 1))), data.draw(layouts))
    return [x], {"axis": axis, "descending": data.draw(st.booleans())}


def _sort_ref(x, axis, descending):
    return -np.sort(-x, axis=axis) if descending else np.sort(x, axis=axis)


def _int_axis(data):
    shape = data.draw(shapes(1, 4))
    return [data.draw(tensors(shape))], {"axis": data.draw(st.integers(-len(shape),
                                                                       len(shape) - 1))}


_INT_DIM = _reduction(distinct=True, allow_tuple=False, allow_none=False, keepdims=False)

CASES = [
    OpCase("sum", tl.sum, np.sum, _reduction()),
    OpCase("sum_method", lambda x, axis, keepdims: x.sum(axis, keepdims), np.sum,
           _reduction()),
    OpCase("mean", tl.mean, np.mean, _reduction()),
    # squared, so second derivatives run through Unreduce's backward (the adjoint pair)
    OpCase("sum_squared", lambda x, axis, keepdims: tl.sum(x, axis, keepdims) ** 2,
           lambda x, axis, keepdims: np.sum(x, axis, keepdims=keepdims) ** 2, _reduction()),
    OpCase("mean_squared", lambda x, axis, keepdims: tl.mean(x, axis, keepdims) ** 2,
           lambda x, axis, keepdims: np.mean(x, axis, keepdims=keepdims) ** 2, _reduction()),
    OpCase("var", tl.var, lambda x, axis, keepdims: np.var(x, axis, ddof=1,
                                                           keepdims=keepdims),
           _reduction(min_side=2)),
    OpCase("var_biased", lambda x, axis, keepdims: tl.var(x, axis, keepdims, correction=0),
           lambda x, axis, keepdims: np.var(x, axis, keepdims=keepdims),
           _reduction(min_side=2)),
    OpCase("std", tl.std, lambda x, axis, keepdims: np.std(x, axis, ddof=1,
                                                           keepdims=keepdims),
           _reduction(min_side=2)),
    OpCase("amax", tl.amax, np.max, _reduction(distinct=True)),
    OpCase("amin", tl.amin, np.min, _reduction(distinct=True)),
    OpCase("max_values", lambda x, axis: tl.max(x, axis).values,
           lambda x, axis: np.max(x, axis), _INT_DIM),
    OpCase("min_values", lambda x, axis: tl.min(x, dim=axis)[0],
           lambda x, axis: np.min(x, axis), _INT_DIM),
    OpCase("logsumexp", tl.logsumexp, sp.logsumexp, _reduction()),
    OpCase("softmax", tl.softmax, sp.softmax, _int_axis),
    OpCase("log_softmax", tl.log_softmax, sp.log_softmax, _int_axis),
    OpCase("cumsum", tl.cumsum, np.cumsum, _int_axis),
    OpCase("sort_values", lambda x, axis, descending: tl.sort(x, axis, descending)[0],
           _sort_ref, _sort_draw),
    OpCase("topk_values", lambda x, **kw: tl.topk(x, **kw)[0], _topk_ref, _topk()),
    # prod: a tree of products, exact with zeros too (values in [-2, 2] include near-zeros)
    OpCase("prod", lambda x, axis, keepdims: tl.prod(x, axis, keepdims),
           lambda x, axis, keepdims: np.prod(x, axis=axis, keepdims=keepdims),
           _reduction(allow_tuple=False)),
    OpCase("median_values", lambda x, axis: tl.median(x, axis).values,
           lambda x, axis: np.take(np.sort(x, axis), (x.shape[axis] - 1) // 2, axis),
           _INT_DIM),
    OpCase("median_all", lambda x: tl.median(x),
           lambda x: np.sort(x.reshape(-1))[(x.size - 1) // 2],
           lambda data: [leaf(distinct_values(data.draw(shapes(1, 3)),
                                              data.draw(st.integers(0, 2**31 - 1))))]),
]


@pytest.mark.parametrize("case", CASES, ids=case_id)
@given(data=st.data())
def test_gradcheck(case, data):
    xs, fn, ref = case.sample(data)
    check_forward(case, xs, fn, ref)
    assert tl.gradcheck(fn, xs, **case.tol)


@pytest.mark.parametrize("case", [c for c in CASES if c.gradgrad], ids=case_id)
@settings(max_examples=6)
@given(data=st.data())
def test_gradgradcheck(case, data):
    xs, fn, _ = case.sample(data)
    assert tl.gradgradcheck(fn, xs, **case.tol)


# ----------------------------------------------------------------------------- specifics
@pytest.mark.parametrize("fn,want", [(tl.max, [0.0, 0.5, 0.5]), (tl.min, [1 / 3] * 3),
                                     (tl.amax, [0.0, 0.5, 0.5])])
def test_extremum_ties_share_gradient(fn, want):
    x = tl.tensor([1.0, 3.0, 3.0] if fn is not tl.min else [2.0, 2.0, 2.0], requires_grad=True)
    fn(x).backward()
    np.testing.assert_allclose(x.grad.numpy(), want)


def test_logsumexp_softmax_stable_for_large_inputs():
    x = tl.tensor([[1000.0, 1000.0, -1000.0], [-1e4, 0.0, 1e4]], requires_grad=True)
    lse = tl.logsumexp(x, axis=1)
    np.testing.assert_allclose(lse.detach().numpy(), [1000 + np.log(2), 1e4], rtol=1e-6)
    p = tl.softmax(x, axis=1)
    lp = tl.log_softmax(x, axis=1)
    assert np.isfinite(p.detach().numpy()).all() and np.isfinite(lp.detach().numpy()).all()
    (lse.sum() + (p * lp).sum()).backward()
    assert np.isfinite(x.grad.numpy()).all()


def test_pytorch_spellings_dim_keepdim():
    x = tl.randn(2, 3, 4)
    np.testing.assert_allclose(x.sum(dim=1, keepdim=True).numpy(),
                               x.numpy().sum(1, keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(x.mean(dim=(0, 2)).numpy(), x.numpy().mean((0, 2)),
                               rtol=1e-6)
    np.testing.assert_allclose(tl.var(x, dim=-1, unbiased=False).numpy(),
                               x.numpy().var(-1), rtol=1e-5)
    np.testing.assert_allclose(tl.softmax(x, dim=0).numpy(), sp.softmax(x.numpy(), 0),
                               rtol=1e-5)


@given(shape=shapes(1, 3), data=st.data())
@settings(max_examples=15)
def test_index_reductions_match_numpy(shape, data):
    x = tl.tensor(distinct_values(shape, data.draw(st.integers(0, 1000))))
    a = x.numpy()
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    np.testing.assert_array_equal(tl.argmax(x).numpy(), np.argmax(a))
    np.testing.assert_array_equal(x.argmax(axis).numpy(), np.argmax(a, axis))
    np.testing.assert_array_equal(x.argmin(axis, keepdims=True).numpy(),
                                  np.argmin(a, axis, keepdims=True))
    np.testing.assert_array_equal(x.argsort(axis).numpy(), np.argsort(a, axis))
    vals, idx = tl.sort(x, axis, descending=True)
    np.testing.assert_array_equal(idx.numpy(), np.argsort(-a, axis))
    assert not idx.requires_grad and idx.dtype.kind == "i"
    k = shape[axis]
    tv, ti = tl.topk(x, k, axis=axis)
    np.testing.assert_array_equal(tv.numpy(), vals.numpy())
    np.testing.assert_array_equal(ti.numpy(), idx.numpy())


def test_max_min_with_dim_return_values_and_indices():
    """Regression (issue 13): x.max(1)[1] is the argmax (PyTorch's named tuple), not row 1."""
    a = np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0], [4.0, 4.5, 9.0]])
    x = tl.tensor(a)
    np.testing.assert_array_equal(x.max(1)[1].numpy(), [1, 0, 2])
    np.testing.assert_array_equal(tl.max(x, 1).indices.numpy(), [1, 0, 2])
    np.testing.assert_array_equal(x.max(dim=0).values.numpy(), a.max(0))
    values, indices = x.min(1, keepdim=True)
    np.testing.assert_array_equal(values.numpy(), a.min(1, keepdims=True))
    np.testing.assert_array_equal(indices.numpy(), a.argmin(1)[:, None])
    assert isinstance(x.max(), tl.Tensor) and float(x.max()) == 9.0   # no dim: a tensor
    np.testing.assert_array_equal(x.max(tl.tensor(4.0)).numpy(), np.maximum(a, 4.0))
    np.testing.assert_array_equal(tl.min(x, x.T).numpy(), np.minimum(a, a.T))
    with pytest.raises(TypeError, match="amax"):
        x.max((0, 1))
    np.testing.assert_array_equal(tl.topk(x, 1, 1).indices.numpy()[:, 0], [1, 0, 2])


def test_reduction_errors():
    with pytest.raises(ValueError, match=r"topk: k=5 .*shape \(3,\)"):
        tl.topk(tl.randn(3), 5)
    with pytest.raises(IndexError, match="axis 2 is out of range"):
        tl.sum(tl.randn(3, 4), axis=2)
    with pytest.raises(TypeError, match="mean: expected a floating tensor"):
        tl.mean(tl.tensor([1, 2]))


def test_all_any():
    x = tl.tensor([[True, False], [True, True]])
    assert not bool(tl.all(x)) and bool(tl.any(x))
    np.testing.assert_array_equal(tl.all(x, axis=1).numpy(), [False, True])
