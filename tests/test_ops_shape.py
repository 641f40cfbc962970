"""Shape ops (tinylatent/ops/shape.py): reshape view flatten permute transpose T expand
broadcast_to squeeze unsqueeze cat stack split chunk pad flip roll tril triu, against NumPy,
with gradcheck and gradgradcheck on drawn shapes and non-contiguous layouts."""
import numpy as np
import pytest
from hypothesis import strategies as st

import tinylatent as tl
from strategies import OpCase, op_table_tests, shapes, tensors


def _one(draw_kw, min_dims=0, max_dims=4):
    """Drawer for a one-input op whose keyword arguments depend on the drawn shape."""
    def draw(data):
        shape = data.draw(shapes(min_dims, max_dims))
        return [data.draw(tensors(shape))], draw_kw(data, shape)
    return draw


def _new_shape(data, shape):
    n = int(np.prod(shape, dtype=np.int64))
    cands = [(-1,), tuple(reversed(shape)), (1,) + shape, shape + (1, 1), (n, 1)]
    if len(shape) >= 2:
        cands.append((shape[0], -1))
    return {"shape": data.draw(st.sampled_from(cands))}


def _flatten_kw(data, shape):
    nd = len(shape)
    s = data.draw(st.integers(0, nd - 1))
    return {"start_dim": s, "end_dim": data.draw(st.integers(s, nd - 1))}


def _flatten_ref(x, start_dim, end_dim):
    return x.reshape(x.shape[:start_dim] + (-1,) + x.shape[end_dim + 1:])


def _perm_kw(data, shape):
    return {"perm": tuple(data.draw(st.permutations(range(len(shape)))))}


def _transpose_kw(data, shape):
    nd = len(shape)
    return {"dim0": data.draw(st.integers(-nd, nd - 1)), "dim1": data.draw(st.integers(-nd,
                                                                                     nd - 1))}


def _expand_kw(data, shape):
    target = tuple(data.draw(st.integers(1, 3)) if n == 1 else n for n in shape)
    lead = tuple(data.draw(st.lists(st.integers(1, 3), max_size=4 - len(shape))))
    return {"shape": lead + target}


def _squeeze_kw(data, shape):
    return {"axis": data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))}


def _squeeze_ref(x, axis):
    if axis is None:
        return np.squeeze(x)
    return np.squeeze(x, axis) if x.shape[axis] == 1 else x


def _unsqueeze_kw(data, shape):
    return {"axis": data.draw(st.integers(-len(shape) - 1, len(shape)))}


def _pad_kw(data, shape):
    widths = tuple((data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))) for _ in shape)
    return {"widths": widths, "value": data.draw(st.sampled_from([0.0, -1.5]))}


def _pad_torch_kw(data, shape):
    k = data.draw(st.integers(1, len(shape)))
    return {"flat": tuple(data.draw(st.integers(0, 2)) for _ in range(2 * k))}


def _pad_torch_ref(x, flat):
    pairs = [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)][::-1]
    return np.pad(x, [(0, 0)] * (x.ndim - len(pairs)) + pairs)


def _pad_mode_kw(data, shape):
    mode = data.draw(st.sampled_from(["reflect", "replicate", "circular"]))
    k = data.draw(st.integers(1, len(shape)))            # pad the last k axes
    flat = []
    for n in reversed(shape[-k:]):                        # PyTorch order: last axis first
        limit = {"reflect": n - 1, "replicate": 3, "circular": n}[mode]
        flat += [data.draw(st.integers(0, min(limit, 3))) for _ in range(2)]
    return {"flat": tuple(flat), "mode": mode}


def _pad_mode_ref(x, flat, mode):
    pairs = [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)][::-1]
    np_mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode]
    return np.pad(x, [(0, 0)] * (x.ndim - len(pairs)) + pairs, mode=np_mode)


def _shuffle_draw(data):
    r = data.draw(st.integers(1, 3))
    lead = tuple(data.draw(shapes(0, 2, max_side=2)))
    shape = lead + (data.draw(st.integers(1, 2)) * r * r, data.draw(st.integers(1, 3)),
                    data.draw(st.integers(1, 3)))
    return [data.draw(tensors(shape))], {"r": r}


def _pixel_shuffle_ref(x, r):
    """out[..., c, h r + i, w r + j] = x[..., c r^2 + i r + j, h, w], element by element."""
    *lead, cr2, h, w = x.shape
    out = np.empty(tuple(lead) + (cr2 // (r * r), h * r, w * r))
    for c in range(cr2 // (r * r)):
        for i in range(r):
            for j in range(r):
                out[..., c, i::r, j::r] = x[..., c * r * r + i * r + j, :, :]
    return out


def _unshuffle_draw(data):
    r = data.draw(st.integers(1, 3))
    shape = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)),
             data.draw(st.integers(1, 2)) * r, data.draw(st.integers(1, 2)) * r)
    return [data.draw(tensors(shape))], {"r": r}


def _pixel_unshuffle_ref(x, r):
    n, c, hr, wr = x.shape
    out = np.empty((n, c * r * r, hr // r, wr // r))
    for k in range(c):
        for i in range(r):
            for j in range(r):
                out[:, k * r * r + i * r + j] = x[:, k, i::r, j::r]
    return out


def _unbind_kw(data, shape):
    return {"dim": data.draw(st.integers(-len(shape), len(shape) - 1))}


def _diagonal_kw(data, shape):
    d1, d2 = data.draw(st.lists(st.integers(0, len(shape) - 1), min_size=2, max_size=2,
                                unique=True))
    return {"offset": data.draw(st.integers(-2, 2)), "d1": d1, "d2": d2}


def _flip_kw(data, shape):
    nd = len(shape)
    return {"axis": data.draw(st.one_of(st.none(), st.integers(-nd, nd - 1),
                                        st.lists(st.integers(0, nd - 1), min_size=1,
                                                 unique=True).map(tuple)))}


def _roll_kw(data, shape):
    nd = len(shape)
    kind = data.draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        return {"shift": data.draw(st.integers(-5, 5)), "axis": None}
    if kind == "int":
        return {"shift": data.draw(st.integers(-5, 5)), "axis": data.draw(st.integers(-nd,
                                                                                   nd - 1))}
    axes = tuple(data.draw(st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd,
                                    unique=True)))
    return {"shift": tuple(data.draw(st.integers(-4, 4)) for _ in axes), "axis": axes}


def _k_kw(data, shape):
    return {"k": data.draw(st.integers(-2, 2))}


def _tensor_list(same_shape: bool):
    """Drawer for cat / stack: 1-3 tensors agreeing on every axis but (for cat) `axis`."""
    def draw(data):
        shape = data.draw(shapes(1, 3))
        nd = len(shape)
        axis = data.draw(st.integers(-nd, nd - 1)) if not same_shape else \
            data.draw(st.integers(-nd - 1, nd))
        xs = []
        for _ in range(data.draw(st.integers(1, 3))):
            s = list(shape)
            if not same_shape:
                s[axis] = data.draw(st.integers(1, 3))
            xs.append(data.draw(tensors(tuple(s))))
        return xs, {"axis": axis}
    return draw


def _split_kw(data, shape):
    nd = len(shape)
    axis = data.draw(st.integers(-nd, nd - 1))
    n = shape[axis]
    if data.draw(st.booleans()):
        return {"sections": data.draw(st.integers(1, n)), "axis": axis}
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=3)))
    sizes = [b - a for a, b in zip([0] + cuts, cuts + [n])]
    return {"sections": sizes, "axis": axis}


def _split_ref(x, sections, axis):
    n = x.shape[axis]
    if isinstance(sections, int):
        cuts = list(range(sections, n, sections))
    else:
        cuts = list(np.cumsum(sections)[:-1])
    return tuple(np.split(x, cuts, axis=axis))


def _chunk_kw(data, shape):
    nd = len(shape)
    return {"chunks": data.draw(st.integers(1, 4)), "axis": data.draw(st.integers(-nd,
                                                                                nd - 1))}


def _chunk_ref(x, chunks, axis):
    size = -(-x.shape[axis] // chunks)
    return _split_ref(x, size, axis)


def _tri_ref(lower):
    return lambda x, k: np.tril(x, k) if lower else np.triu(x, k)


CASES = [
    OpCase("reshape", lambda x, shape: x.reshape(shape), np.reshape, _one(_new_shape)),
    # view never copies, so (as in PyTorch) it needs a contiguous input: the drawn strided
    # layouts go through contiguous() first; test_reliability checks that view raises on them
    OpCase("view_varargs", lambda x, shape: x.contiguous().view(*shape), np.reshape,
           _one(_new_shape)),
    OpCase("flatten", tl.flatten, _flatten_ref, _one(_flatten_kw, 1)),
    OpCase("permute", lambda x, perm: x.permute(*perm),
           lambda x, perm: np.transpose(x, perm), _one(_perm_kw)),
    OpCase("transpose", tl.transpose, lambda x, dim0, dim1: np.swapaxes(x, dim0, dim1),
           _one(_transpose_kw, 1)),
    OpCase("T", lambda x: x.T, lambda x: x.T, _one(lambda d, s: {})),
    OpCase("expand", lambda x, shape: x.expand(*shape), np.broadcast_to, _one(_expand_kw)),
    OpCase("broadcast_to", tl.broadcast_to, np.broadcast_to, _one(_expand_kw)),
    OpCase("squeeze", tl.squeeze, _squeeze_ref, _one(_squeeze_kw, 1)),
    OpCase("unsqueeze", tl.unsqueeze, np.expand_dims, _one(_unsqueeze_kw)),
    OpCase("cat", lambda *xs, axis: tl.cat(xs, axis=axis),
           lambda *xs, axis: np.concatenate(xs, axis=axis), _tensor_list(False)),
    OpCase("stack", lambda *xs, axis: tl.stack(xs, axis=axis),
           lambda *xs, axis: np.stack(xs, axis=axis), _tensor_list(True)),
    OpCase("split", lambda x, sections, axis: tl.split(x, sections, axis), _split_ref,
           _one(_split_kw, 1, 3)),
    OpCase("chunk", tl.chunk, _chunk_ref, _one(_chunk_kw, 1, 3)),
    OpCase("pad", lambda x, widths, value: tl.pad(x, widths, value=value),
           lambda x, widths, value: np.pad(x, widths, constant_values=value),
           _one(_pad_kw, 1, 3)),
    OpCase("pad_torch_style", lambda x, flat: tl.pad(x, flat), _pad_torch_ref,
           _one(_pad_torch_kw, 1, 3)),
    OpCase("pad_reflect_replicate_circular", lambda x, flat, mode: tl.pad(x, flat, mode),
           _pad_mode_ref, _one(_pad_mode_kw, 1, 4)),
    OpCase("pixel_shuffle", lambda x, r: tl.pixel_shuffle(x, r), _pixel_shuffle_ref,
           _shuffle_draw),
    OpCase("pixel_unshuffle", lambda x, r: tl.pixel_unshuffle(x, r), _pixel_unshuffle_ref,
           _unshuffle_draw),
    OpCase("unbind", lambda x, dim: tl.unbind(x, dim),
           lambda x, dim: tuple(np.moveaxis(x, dim, 0)), _one(_unbind_kw, 1, 3)),
    OpCase("diagonal", lambda x, offset, d1, d2: tl.diagonal(x, offset, d1, d2),
           lambda x, offset, d1, d2: np.diagonal(x, offset, d1, d2), _one(_diagonal_kw, 2, 4)),
    OpCase("diag_of_vector", lambda x, k: tl.diag(x, k), lambda x, k: np.diag(x, k),
           _one(lambda d, s: {"k": d.draw(st.integers(-2, 2))}, 1, 1)),
    OpCase("flip", tl.flip, lambda x, axis: np.flip(x, axis), _one(_flip_kw, 1)),
    OpCase("roll", lambda x, shift, axis: tl.roll(x, shift, axis),
           lambda x, shift, axis: np.roll(x, shift, axis), _one(_roll_kw, 1)),
    OpCase("tril", tl.tril, _tri_ref(True), _one(_k_kw, 2)),
    OpCase("triu", tl.triu, _tri_ref(False), _one(_k_kw, 2)),
]


test_gradcheck, test_gradgradcheck = op_table_tests(CASES, gradgrad_examples=5)


# ----------------------------------------------------------------------------- specifics
def test_expand_gradient_sums_over_copies():
    x = tl.tensor([[1.0], [2.0]], requires_grad=True)
    x.expand(3, 2, 4).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[12.0], [12.0]])


def test_shape_errors_name_op_and_shapes():
    with pytest.raises(ValueError, match=r"reshape: .*\(2, 3\).*\(4,\)"):
        tl.randn(2, 3).reshape(4)
    with pytest.raises(ValueError, match=r"expand: .*\(2, 3\).*\(4, 3\)"):
        tl.randn(2, 3).expand(4, 3)
    with pytest.raises(ValueError, match=r"cat: tensor 1 has shape \(2, 4\)"):
        tl.cat([tl.randn(2, 3), tl.randn(2, 4)], axis=0)
    with pytest.raises(ValueError, match="stack: all tensors must have the same shape"):
        tl.stack([tl.randn(2), tl.randn(3)])
    with pytest.raises(ValueError, match="split: sizes"):
        tl.split(tl.randn(5), [2, 2])
    with pytest.raises(ValueError, match="permute"):
        tl.randn(2, 3).permute(0, 0)


def test_cat_promotes_dtypes():
    out = tl.cat([tl.ones(2, dtype=tl.float32), tl.ones(2, dtype=tl.float64)])
    assert out.dtype == np.float64


def test_views_share_no_gradient_buffer():
    x = tl.randn(2, 3, requires_grad=True)
    y = x.reshape(6)
    z = y * 2
    z.sum().backward()
    assert x.grad.shape == (2, 3) and x.grad.array.flags.writeable
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 3), 2.0))


def test_pad_modes_match_torch_and_reject_bad_widths():
    x = tl.arange(12.0).reshape(1, 1, 3, 4)
    torch = pytest.importorskip("torch")
    xt = torch.arange(12.0).reshape(1, 1, 3, 4)
    for mode in ("reflect", "replicate", "circular"):
        np.testing.assert_array_equal(
            tl.nn.functional.pad(x, (2, 1, 1, 2), mode=mode).numpy(),
            torch.nn.functional.pad(xt, (2, 1, 1, 2), mode=mode).numpy(), err_msg=mode)
    with pytest.raises(ValueError, match=r"reflect padding \(3, 0\) of axis 2 needs padding "
                                         r"< the axis size 3"):
        tl.pad(x, (0, 0, 3, 0), mode="reflect")
    with pytest.raises(ValueError, match="mode must be"):
        tl.pad(x, (1, 1), mode="mirror")
    with pytest.raises(ValueError, match="only to mode 'constant'"):
        tl.pad(x, (1, 1), mode="reflect", value=2.0)


def test_unbind_backward_fills_missing_slices_with_zeros_in_one_node():
    x = tl.tensor(np.arange(15.0).reshape(5, 3), requires_grad=True)
    parts = tl.unbind(x, 0)
    assert len({id(p._ctx) for p in parts}) == 1            # one op, five outputs
    (parts[1] * 2.0 + parts[3] ** 2).sum().backward()
    expected = np.zeros((5, 3))
    expected[1] = 2.0
    expected[3] = 2.0 * np.arange(9.0, 12.0)
    np.testing.assert_array_equal(x.grad.numpy(), expected)
    # under create_graph the backward is differentiable: d/dx sum(grad^2) = 8 x[3] on row 3
    x.grad = None
    g, = tl.autograd.grad((tl.unbind(x, 0)[3] ** 2).sum(), x, create_graph=True)
    (gg,) = tl.autograd.grad((g ** 2).sum(), x)
    expected = np.zeros((5, 3))
    expected[3] = 8.0 * np.arange(9.0, 12.0)
    np.testing.assert_allclose(gg.numpy(), expected)
    assert tl.unbind(tl.zeros(0, 2), 0) == ()
