"""tl.gradcheck / tl.gradgradcheck themselves: they pass correct gradients and FAIL wrong
ones, on both the full-Jacobian and the random-direction paths, naming the input, the
element and both values."""
import numpy as np
import pytest

import tinylatent as tl
from tinylatent.autograd import Function
from tinylatent.gradcheck import GradcheckError


class WrongSquare(Function):
    """y = x^2 with a deliberately wrong backward (3x instead of 2x)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 3.0 * x


class WrongSecondDerivative(Function):
    """y = x^3 whose backward is right to first order but constant in x (3 x0^2 frozen),
    so its second derivative is wrong."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x * x * 3.0)
        return x * x * x

    @staticmethod
    def backward(ctx, grad):
        (d,) = ctx.saved_tensors
        return grad * d


def _x(*shape):
    return tl.tensor(np.linspace(0.5, 1.5, int(np.prod(shape))).reshape(shape),
                     dtype=tl.float64, requires_grad=True)


def test_correct_gradients_pass_both_paths():
    x = _x(3, 4)
    assert tl.gradcheck(lambda t: (t * t).exp(), [x])                       # full Jacobian
    assert tl.gradcheck(lambda t: (t * t).exp(), [x], full_jacobian_max=1)  # directions
    assert tl.gradgradcheck(lambda t: (t * t).exp(), [x])


def test_wrong_backward_fails_full_jacobian_and_names_everything():
    x = _x(2, 3)
    with pytest.raises(GradcheckError) as e:
        tl.gradcheck(WrongSquare.apply, [x])
    msg = str(e.value)
    assert "Jacobian mismatch for input 0 (shape (2, 3))" in msg
    assert "at element (" in msg and "output 0 element (" in msg
    # the worst element: the largest |3x - 2x| = x, i.e. the last one (x = 1.5)
    assert "element (1, 2)" in msg and "analytic 4.5" in msg and "numerical 3" in msg
    assert tl.gradcheck(WrongSquare.apply, [x], raise_exception=False) is False


def test_wrong_backward_fails_random_directions():
    x = _x(40, 40)
    with pytest.raises(GradcheckError, match=r"directional derivative mismatch for input 0 "
                                             r"\(shape \(40, 40\)\), random direction 0: "
                                             r"analytic .*, numerical "):
        tl.gradcheck(WrongSquare.apply, [x])


def test_wrong_input_index_is_named():
    a, b = _x(2), _x(2)
    with pytest.raises(GradcheckError, match="for input 1"):
        tl.gradcheck(lambda p, q: p * WrongSquare.apply(q), [a, b])


def test_gradgradcheck_catches_wrong_second_derivative():
    x = _x(3)
    assert tl.gradcheck(WrongSecondDerivative.apply, [x])
    with pytest.raises(GradcheckError, match="mismatch"):
        tl.gradgradcheck(WrongSecondDerivative.apply, [x])


def test_multiple_outputs_and_non_grad_inputs():
    x, c = _x(3), tl.tensor([1.0, 2.0, 3.0], dtype=tl.float64)
    assert tl.gradcheck(lambda t, k: (t * k, t.exp().sum()), [x, c])
    assert tl.gradgradcheck(lambda t, k: (t * t * k, t.exp().sum()), [x, c])


def test_input_checks():
    with pytest.raises(TypeError, match="gradcheck: input 0 has dtype float32"):
        tl.gradcheck(lambda t: t * 2, [tl.randn(2, requires_grad=True)])
    with pytest.raises(ValueError, match="gradcheck: no input requires grad"):
        tl.gradcheck(lambda t: t * 2, [tl.randn(2, dtype=tl.float64)])


def test_inputs_restored_after_check():
    x = _x(2, 2)
    before = x.detach().numpy().copy()
    tl.gradcheck(lambda t: t.sin(), [x])
    tl.gradcheck(lambda t: t.sin(), [x], full_jacobian_max=1)
    np.testing.assert_array_equal(x.detach().numpy(), before)
