"""Indexing ops (tinylatent/ops/indexing.py): getitem with ints, slices, None, Ellipsis,
boolean masks and integer arrays (repeats accumulate), take_along_axis / gather,
scatter_add, index_add, index_select, one_hot; against NumPy, with gradcheck and
gradgradcheck."""
import numpy as np
import pytest
from hypothesis import strategies as st

import tinylatent as tl
from strategies import OpCase, op_table_tests, shapes, tensors


def _seed(data):
    return np.random.default_rng(data.draw(st.integers(0, 2**31 - 1)))


def _slice(data, n):
    step = data.draw(st.sampled_from([1, 1, 2, -1, -2]))
    start = data.draw(st.one_of(st.none(), st.integers(-n, n)))
    stop = data.draw(st.one_of(st.none(), st.integers(-n - 1, n)))
    return slice(start, stop, step)


def _basic_index(data, shape):
    """A tuple of ints, slices and None for the leading axes, then optionally an Ellipsis and
    more items for the trailing axes (items after an Ellipsis index the last axes, so they are
    drawn for those), and maybe a final None."""
    def items_for(sizes):
        items = []
        for n in sizes:
            kind = data.draw(st.sampled_from(["int", "slice", "slice", "none"]))
            if kind == "int":
                items.append(data.draw(st.integers(-n, n - 1)))
            elif kind == "slice":
                items.append(_slice(data, n))
            else:
                items.append(None)
                items.append(_slice(data, n))
        return items

    n_lead = data.draw(st.integers(0, len(shape)))
    items = items_for(shape[:n_lead])
    if data.draw(st.booleans()):
        n_trail = data.draw(st.integers(0, len(shape) - n_lead))
        items += [Ellipsis] + items_for(shape[len(shape) - n_trail:])
    if data.draw(st.booleans()):
        items.append(None)
    return tuple(items)


def _draw_x(data, min_dims=1, max_dims=4):
    shape = data.draw(shapes(min_dims, max_dims))
    return shape, data.draw(tensors(shape))


def _getitem_basic(data):
    shape, x = _draw_x(data)
    return [x], {"index": _basic_index(data, shape)}


def _getitem_int(data):
    shape, x = _draw_x(data)
    return [x], {"index": data.draw(st.integers(-shape[0], shape[0] - 1))}


def _getitem_mask(data):
    shape, x = _draw_x(data)
    k = data.draw(st.integers(1, len(shape)))
    mask = _seed(data).random(shape[:k]) < 0.6
    return [x], {"index": mask, "wrap": data.draw(st.booleans())}


def _getitem_intarray(data):
    """Integer arrays with repeats: one array, a 2-D array, two arrays, or array + slice."""
    shape, x = _draw_x(data)
    rng = _seed(data)
    kind = data.draw(st.sampled_from(["one", "two_d", "pair", "with_slice", "list"]))
    if kind == "one":
        index = rng.integers(-shape[0], shape[0], size=data.draw(st.integers(1, 5)))
    elif kind == "two_d":
        index = rng.integers(0, shape[0], size=(2, 3))
    elif kind == "list":
        index = [int(i) for i in rng.integers(0, shape[0], size=4)]
    elif kind == "pair" and len(shape) >= 2:
        m = data.draw(st.integers(1, 4))
        index = (rng.integers(0, shape[0], size=m), rng.integers(0, shape[1], size=m))
    else:
        index = (slice(None), rng.integers(0, shape[1], size=4)) if len(shape) >= 2 else \
            rng.integers(0, shape[0], size=4)
    return [x], {"index": index, "wrap": data.draw(st.booleans())}


def _to_tensor_index(index):
    def one(i):
        return tl.tensor(i) if isinstance(i, np.ndarray) else i
    return tuple(one(i) for i in index) if isinstance(index, tuple) else one(index)


def _getitem(x, index, wrap=False):
    return x[_to_tensor_index(index) if wrap else index]


def _getitem_ref(x, index, wrap=False):
    return x[index]


def _along(data, same_other_dims: bool):
    shape, x = _draw_x(data, 1, 3)
    nd = len(shape)
    axis = data.draw(st.integers(-nd, nd - 1))
    ishape = list(shape)
    ishape[axis] = data.draw(st.integers(1, 4))
    idx = _seed(data).integers(0, shape[axis], size=ishape)
    return shape, x, axis, idx


def _take_draw(data):
    _, x, axis, idx = _along(data, True)
    return [x], {"idx": idx, "axis": axis}


def _scatter_draw(data):
    _, x, axis, idx = _along(data, True)
    src = data.draw(tensors(idx.shape))
    return [x, src], {"idx": idx, "axis": axis}


def _scatter_ref(x, src, idx, axis):
    out = x.copy()
    axis %= x.ndim
    sel = tuple(idx if d == axis else np.arange(idx.shape[d]).reshape(
        [-1 if e == d else 1 for e in range(idx.ndim)]) for d in range(idx.ndim))
    np.add.at(out, sel, src)
    return out


def _index_add_draw(data):
    shape, x = _draw_x(data, 1, 3)
    nd = len(shape)
    axis = data.draw(st.integers(-nd, nd - 1))
    m = data.draw(st.integers(1, 5))
    index = _seed(data).integers(0, shape[axis], size=m)
    sshape = list(shape)
    sshape[axis] = m
    return [x, data.draw(tensors(tuple(sshape)))], {"index": index, "axis": axis}


def _index_add_ref(x, src, index, axis):
    out = x.copy()
    np.add.at(out, (slice(None),) * (axis % x.ndim) + (index,), src)
    return out


def _index_select_draw(data):
    shape, x = _draw_x(data, 1, 3)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    index = _seed(data).integers(0, shape[axis], size=data.draw(st.integers(1, 4)))
    return [x], {"index": index, "axis": axis}


CASES = [
    OpCase("getitem_int", _getitem, _getitem_ref, _getitem_int),
    OpCase("getitem_slices_none_ellipsis", _getitem, _getitem_ref, _getitem_basic),
    OpCase("getitem_bool_mask", _getitem, _getitem_ref, _getitem_mask),
    OpCase("getitem_int_arrays_repeats", _getitem, _getitem_ref, _getitem_intarray),
    OpCase("take_along_axis", lambda x, idx, axis: tl.take_along_axis(x, idx, axis),
           lambda x, idx, axis: np.take_along_axis(x, idx, axis), _take_draw),
    OpCase("gather", lambda x, idx, axis: x.gather(axis, tl.tensor(idx)),
           lambda x, idx, axis: np.take_along_axis(x, idx, axis), _take_draw),
    OpCase("scatter_add", lambda x, src, idx, axis: tl.scatter_add(x, axis, idx, src),
           _scatter_ref, _scatter_draw),
    OpCase("index_add", lambda x, src, index, axis: x.index_add(axis, tl.tensor(index), src),
           _index_add_ref, _index_add_draw),
    OpCase("index_select", lambda x, index, axis: x.index_select(axis, index),
           lambda x, index, axis: np.take(x, index, axis), _index_select_draw),
]


test_gradcheck, test_gradgradcheck = op_table_tests(CASES, gradgrad_examples=6)


# ----------------------------------------------------------------------------- specifics
def test_repeated_indices_accumulate():
    x = tl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[[0, 0, 2, 0]].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 0.0, 1.0])
    y = tl.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    tl.take_along_axis(y, tl.tensor([[1, 1, 1], [0, 1, 0]]), 1).sum().backward()
    np.testing.assert_array_equal(y.grad.numpy(), [[0.0, 3.0], [2.0, 1.0]])


def test_mask_gradient_lands_on_selected_entries():
    x = tl.tensor([[1.0, -2.0], [-3.0, 4.0]], requires_grad=True)
    (x[x > 0] * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[3.0, 0.0], [0.0, 3.0]])


def test_one_hot():
    oh = tl.one_hot(tl.tensor([2, 0, 1]), 3)
    assert oh.dtype == np.float32
    np.testing.assert_array_equal(oh.numpy(), np.eye(3)[[2, 0, 1]])
    np.testing.assert_array_equal(tl.one_hot(np.array([[1]]), 2, dtype=tl.float64).numpy(),
                                  [[[0.0, 1.0]]])
    with pytest.raises(ValueError, match=r"one_hot: indices must lie in \[0, 3\)"):
        tl.one_hot(tl.tensor([3]), 3)


def test_bad_index_dtypes():
    x = tl.randn(3, 4)
    with pytest.raises(IndexError, match="must be integer or bool, got dtype float32"):
        x[tl.tensor([0.0, 1.0])]
    with pytest.raises(IndexError, match="take_along_axis: indices must be integers"):
        tl.take_along_axis(x, np.zeros((3, 1)), 1)
    with pytest.raises(IndexError, match="scatter_add: indices must be integers"):
        tl.scatter_add(x, 0, np.zeros((3, 4)), tl.randn(3, 4))
    with pytest.raises(IndexError, match="index_add: indices must be integers"):
        tl.index_add(x, 0, np.zeros(2), tl.randn(2, 4))
    with pytest.raises(IndexError, match=r"getitem: .*shape \(3, 4\)"):
        x[5]
    with pytest.raises(ValueError, match=r"scatter_add: index shape \(1, 4\) must equal src"):
        tl.scatter_add(x, 0, np.zeros((1, 4), dtype=np.int64), tl.randn(3, 4))


def test_setitem_under_no_grad_bumps_version():
    x = tl.zeros(3)
    x[1] = 5.0
    x[tl.tensor([0, 2])] = tl.tensor([1.0, 2.0])
    np.testing.assert_array_equal(x.numpy(), [1.0, 5.0, 2.0])
    assert x._version == 2


def test_iteration_and_len():
    x = tl.randn(3, 2)
    rows = list(x)
    assert len(x) == 3 and len(rows) == 3 and rows[1].shape == (2,)
    with pytest.raises(TypeError, match="0-d"):
        len(tl.tensor(1.0))
