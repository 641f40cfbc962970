"""Matrix products (tinylatent/ops/linalg.py): matmul for 1-D, 2-D and batched operands with
broadcast batch axes, the @ operator, linear and outer; against NumPy, with gradcheck and
gradgradcheck; errors name the op, both shapes and both dtypes."""
import numpy as np
import pytest
from hypothesis import strategies as st

import tinylatent as tl
from tinylatent.ops.linalg import MatMul
from strategies import OpCase, broadcast_shapes, op_table_tests, shapes, tensors


def _matmul_draw(data):
    """Operands of every rank pairing: 1-D x 1-D, 1-D x N-D, N-D x 1-D, batched with
    broadcasting batch shapes."""
    n, k, m = (data.draw(st.integers(1, 3)) for _ in range(3))
    kind = data.draw(st.sampled_from(["vv", "vm", "mv", "mm", "batched"]))
    if kind == "vv":
        sa, sb = (k,), (k,)
    elif kind == "vm":
        sa, sb = (k,), data.draw(shapes(0, 2)) + (k, m)
    elif kind == "mv":
        sa, sb = data.draw(shapes(0, 2)) + (n, k), (k,)
    elif kind == "mm":
        sa, sb = (n, k), (k, m)
    else:
        ba, bb = data.draw(broadcast_shapes(1, 2))
        sa, sb = ba + (n, k), bb + (k, m)
    return [data.draw(tensors(sa)), data.draw(tensors(sb))]


def _linear_draw(data):
    lead = data.draw(shapes(0, 2))
    fin, fout = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3))
    xs = [data.draw(tensors(lead + (fin,))), data.draw(tensors((fout, fin)))]
    if data.draw(st.booleans()):
        xs.append(data.draw(tensors((fout,))))
    return xs


def _linear_ref(x, w, b=None):
    y = x @ w.T
    return y if b is None else y + b


def _outer_draw(data):
    return [data.draw(tensors((data.draw(st.integers(1, 4)),))),
            data.draw(tensors((data.draw(st.integers(1, 4)),)))]


def _flagged_draw(ta, tb):
    """Operands for MatMul.apply(a, b, ta=ta, tb=tb): op(a) @ op(b) with broadcast batch axes."""
    def draw(data):
        n, k, m = (data.draw(st.integers(1, 3)) for _ in range(3))
        ba, bb = data.draw(broadcast_shapes(0, 2))
        sa = ba + ((k, n) if ta else (n, k))
        sb = bb + ((m, k) if tb else (k, m))
        return [data.draw(tensors(sa)), data.draw(tensors(sb))]
    return draw


def _flagged(ta, tb):
    return OpCase(f"matmul_flags_{'T' if ta else 'N'}{'T' if tb else 'N'}",
                  lambda a, b: MatMul.apply(a, b, ta=ta, tb=tb),
                  lambda a, b: np.matmul(np.swapaxes(a, -1, -2) if ta else a,
                                         np.swapaxes(b, -1, -2) if tb else b),
                  _flagged_draw(ta, tb))


def _outer_draw_same(data):
    n = data.draw(st.integers(1, 5))
    return [data.draw(tensors((n,))), data.draw(tensors((n,)))]


CASES = [
    OpCase("matmul", tl.matmul, np.matmul, _matmul_draw),
    OpCase("matmul_operator", lambda a, b: a @ b, np.matmul, _matmul_draw),
    OpCase("linear", tl.linear, _linear_ref, _linear_draw),
    OpCase("outer", tl.outer, np.outer, _outer_draw),
    OpCase("dot", tl.dot, np.dot, _outer_draw_same),
] + [_flagged(ta, tb) for ta in (False, True) for tb in (False, True)]


test_gradcheck, test_gradgradcheck = op_table_tests(CASES, gradgrad_examples=8)


def test_matmul_errors_name_op_shapes_and_dtypes():
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\)"):
        tl.randn(2, 3) @ tl.randn(4, 5)
    with pytest.raises(ValueError, match=r"matmul: batch shapes of \(2, 3, 4\) and "
                                         r"\(3, 4, 2\)"):
        tl.randn(2, 3, 4) @ tl.randn(3, 4, 2)
    with pytest.raises(TypeError, match="matmul: dtypes differ \\(float64 @ float32\\)"):
        tl.randn(3, dtype=tl.float64) @ tl.randn(3, 2)
    with pytest.raises(ValueError, match="matmul: operands must be at least 1-D"):
        tl.matmul(tl.tensor(2.0), tl.randn(3))


def test_matmul_gradient_closed_form():
    a = tl.randn(4, 3, requires_grad=True)
    b = tl.randn(3, 2, requires_grad=True)
    g = tl.randn(4, 2)
    (a @ b).backward(g)
    np.testing.assert_allclose(a.grad.numpy(), g.detach().numpy() @ b.detach().numpy().T,
                               rtol=1e-5)
    np.testing.assert_allclose(b.grad.numpy(), a.detach().numpy().T @ g.detach().numpy(),
                               rtol=1e-5)


def test_numpy_array_at_tensor_uses_rmatmul():
    a = np.random.default_rng(0).standard_normal((2, 3))
    b = tl.randn(3, 4, dtype=tl.float64, requires_grad=True)
    out = a @ b
    assert isinstance(out, tl.Tensor)
    np.testing.assert_allclose(out.detach().numpy(), a @ b.detach().numpy())
    out.sum().backward()
    np.testing.assert_allclose(b.grad.numpy(), a.T @ np.ones((2, 4)))


@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_flagged_matmul_third_derivative(ta, tb):
    """Second derivatives of a cubic in op(A) op(B) go through flagged MatMuls' backward."""
    rng = np.random.default_rng(0)
    a = tl.tensor(rng.standard_normal((3, 2)), requires_grad=True)
    b = tl.tensor(rng.standard_normal((2, 3) if ta == tb else (3, 2)), requires_grad=True)
    assert tl.gradgradcheck(lambda p, q: MatMul.apply(p, q, ta=ta, tb=tb) ** 3, [a, b])
