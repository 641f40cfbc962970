"""Hypothesis strategies shared by the tests: shapes, broadcasting pairs, values kept away
from kinks, and tensors with non-contiguous memory layouts.

    from strategies import shapes, broadcast_shapes, arrays, tensors, leaf

(pytest puts tests/ on sys.path through its conftest, so `strategies` imports by name.)

Values are generated from a drawn seed (fast, and still reproducible by hypothesis); shapes
are kept small (sides 1..3, up to 4-D) so full-Jacobian gradchecks stay cheap.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from hypothesis import strategies as st

import tinylatent as tl

__all__ = ["shapes", "broadcast_shapes", "shape_and_axis", "layouts", "values", "arrays",
           "leaf", "tensors", "distinct_values", "lay_out", "LAYOUTS", "OpCase", "case_id",
           "check_forward", "unary", "binary"]

LAYOUTS = ("contiguous", "transposed", "strided", "reversed")


def shapes(min_dims: int = 0, max_dims: int = 4, min_side: int = 1, max_side: int = 3):
    """Array shapes with up to `max_dims` axes; size-1 axes are frequent by construction."""
    return st.lists(st.integers(min_side, max_side), min_size=min_dims,
                    max_size=max_dims).map(tuple)


@st.composite
def broadcast_shapes(draw, min_dims: int = 0, max_dims: int = 4, max_side: int = 3):
    """A pair of shapes that broadcast together: the second drops leading axes of the first
    and sets some axes to 1; the pair is randomly swapped."""
    a = draw(shapes(min_dims, max_dims, 1, max_side))
    drop = draw(st.integers(0, len(a)))
    b = list(a[drop:])
    for i in range(len(b)):
        if draw(st.booleans()):
            b[i] = 1
    b = tuple(b)
    if draw(st.booleans()):
        a, b = b, a
    return a, b


@st.composite
def shape_and_axis(draw, min_dims: int = 1, max_dims: int = 4, allow_none: bool = True,
                   allow_tuple: bool = True):
    """(shape, axis) with axis an int (maybe negative), a tuple of axes, or None."""
    shape = draw(shapes(min_dims, max_dims))
    nd = len(shape)
    choices = [st.integers(-nd, nd - 1)] if nd else []
    if allow_none or not nd:
        choices.append(st.none())
    if allow_tuple and nd:
        choices.append(st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd,
                                unique=True).map(tuple))
    return shape, draw(st.one_of(*choices))


layouts = st.sampled_from(LAYOUTS)


def values(shape, lo: float = -2.0, hi: float = 2.0, kinks=(), margin: float = 0.1,
           seed: int = 0) -> np.ndarray:
    """float64 values uniform on [lo, hi], pushed at least `margin` away from each kink."""
    rng = np.random.default_rng(seed)
    v = rng.uniform(lo, hi, size=shape)
    for k in kinks:
        near = np.abs(v - k) < margin
        v = np.where(near, k + np.where(v >= k, margin, -margin), v)
    return np.asarray(v, dtype=np.float64)


def distinct_values(shape, seed: int = 0, spacing: float = 0.1) -> np.ndarray:
    """Values that are pairwise at least `spacing` apart (no ties for max/min/sort), so a
    finite difference of size eps never swaps the order of two entries."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape, dtype=np.int64))
    v = (rng.permutation(n) - n / 2.0) * spacing * 2 + rng.uniform(-spacing / 2, spacing / 2,
                                                                  size=n)
    return v.reshape(shape)


def lay_out(a: np.ndarray, layout: str) -> np.ndarray:
    """The same values as `a` in a different memory layout (a view, not C-contiguous)."""
    if layout == "contiguous" or a.ndim == 0:
        return np.array(a, order="C")   # (np.ascontiguousarray would make 0-d arrays 1-d)
    if layout == "transposed":           # Fortran order: a transposed view of a C array
        return np.ascontiguousarray(a.T).T
    if layout == "strided":              # every other element of a bigger buffer
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
        big[..., ::2] = a
        return big[..., ::2]
    if layout == "reversed":             # negative strides
        return np.ascontiguousarray(a[::-1])[::-1]
    raise ValueError(f"unknown layout {layout!r}")


def leaf(a: np.ndarray, layout: str = "contiguous", requires_grad: bool = True) -> tl.Tensor:
    """A float64 leaf tensor wrapping `a` laid out as asked (the view is kept as is)."""
    t = tl.from_numpy(lay_out(np.asarray(a, dtype=np.float64), layout))
    return t.requires_grad_(requires_grad)


@st.composite
def arrays(draw, shape, lo: float = -2.0, hi: float = 2.0, kinks=(), margin: float = 0.1):
    return values(shape, lo, hi, kinks, margin, seed=draw(st.integers(0, 2**31 - 1)))


@st.composite
def tensors(draw, shape=None, lo: float = -2.0, hi: float = 2.0, kinks=(),
            margin: float = 0.1, layout=None, requires_grad: bool = True):
    """A float64 leaf tensor with drawn shape (if not given), values and layout."""
    if shape is None:
        shape = draw(shapes())
    a = draw(arrays(shape, lo, hi, kinks, margin))
    return leaf(a, draw(layouts) if layout is None else layout, requires_grad)


# ----------------------------------------------------------------------------- op tables
# A table-driven op test: each OpCase says how to draw inputs, the tinylatent function and
# the NumPy/SciPy reference. `check_forward` compares values (float64, and float32 for the
# dtype rule); the test files then run tl.gradcheck / tl.gradgradcheck on the same inputs.
@dataclass
class OpCase:
    name: str
    fn: Callable                       # fn(*tensors) -> Tensor or tuple of Tensors
    ref: Callable | None               # ref(*numpy arrays) -> array or tuple of arrays
    draw: Callable                     # draw(data) -> list of input Tensors
    gradgrad: bool = True              # also check second derivatives
    tol: dict = field(default_factory=dict)   # extra gradcheck keyword arguments
    keeps_float32: bool = True         # float32 inputs give float32 outputs

    def __repr__(self) -> str:
        return self.name

    def sample(self, data):
        """Draw inputs; returns (inputs, fn, ref) with any drawn keyword arguments (an
        axis, keepdims, a shift...) bound into fn and ref. `draw` returns either a list of
        input tensors or (inputs, kwargs)."""
        got = self.draw(data)
        xs, kw = got if isinstance(got, tuple) else (got, {})
        if not kw:
            return xs, self.fn, self.ref
        ref = None if self.ref is None else functools.partial(self.ref, **kw)
        return xs, functools.partial(self.fn, **kw), ref


def case_id(case: OpCase) -> str:
    return case.name


def _as_list(out) -> list:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def check_forward(case: OpCase, xs, fn=None, ref=None) -> None:
    """Values equal the reference in float64; float32 inputs stay float32 (dtype rules)."""
    fn = case.fn if fn is None else fn
    ref = case.ref if ref is None else ref
    outs = _as_list(fn(*xs))
    if ref is not None:
        wants = _as_list(ref(*[x.array for x in xs]))
        assert len(outs) == len(wants), case.name
        for o, w in zip(outs, wants):
            w = np.asarray(w)
            assert o.shape == w.shape, f"{case.name}: shape {o.shape} != reference {w.shape}"
            np.testing.assert_allclose(o.detach().numpy(), w, rtol=1e-9, atol=1e-12,
                                       err_msg=case.name)
    if case.keeps_float32:
        xs32 = [x.detach().float() if x.dtype == np.float64 else x for x in xs]
        for o, o32 in zip(outs, _as_list(fn(*xs32))):
            assert o32.dtype == np.float32, f"{case.name}: float32 in, {o32.dtype} out"
            np.testing.assert_allclose(o32.detach().numpy(), o.detach().numpy(), rtol=2e-4,
                                       atol=2e-5, err_msg=case.name)


def unary(lo: float = -2.0, hi: float = 2.0, kinks=(), margin: float = 0.1,
          shape_strategy=None) -> Callable:
    """Input drawer for a one-input op: a drawn shape, values and layout."""
    def draw(data):
        shape = data.draw(shape_strategy if shape_strategy is not None else shapes())
        return [data.draw(tensors(shape, lo, hi, kinks, margin))]
    return draw


def binary(lo=(-2.0, -2.0), hi=(2.0, 2.0), kinks=((), ()), margin: float = 0.1) -> Callable:
    """Input drawer for a two-input op: shapes that broadcast together, drawn layouts."""
    def draw(data):
        sa, sb = data.draw(broadcast_shapes())
        return [data.draw(tensors(sa, lo[0], hi[0], kinks[0], margin)),
                data.draw(tensors(sb, lo[1], hi[1], kinks[1], margin))]
    return draw


def op_table_tests(cases, gradgrad_examples: int = 8):
    """The two tests every op table gets, built once:

    test_gradcheck      forward equals the NumPy/SciPy reference, then first derivatives
                        against float64 central differences;
    test_gradgradcheck  second derivatives, for the cases marked gradgrad.

    Use in a test module as `test_gradcheck, test_gradgradcheck = op_table_tests(CASES)`.
    """
    import pytest
    from hypothesis import given, settings

    @pytest.mark.parametrize("case", cases, ids=case_id)
    @given(data=st.data())
    def test_gradcheck(case, data):
        xs, fn, ref = case.sample(data)
        check_forward(case, xs, fn, ref)
        assert tl.gradcheck(fn, xs, **case.tol)

    @pytest.mark.parametrize("case", [c for c in cases if c.gradgrad], ids=case_id)
    @settings(max_examples=gradgrad_examples)
    @given(data=st.data())
    def test_gradgradcheck(case, data):
        xs, fn, _ = case.sample(data)
        assert tl.gradgradcheck(fn, xs, **case.tol)

    return test_gradcheck, test_gradgradcheck
