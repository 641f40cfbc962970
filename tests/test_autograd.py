"""The engine (tinylatent/autograd.py): backward, leaf accumulation, retain_graph, tl.grad,
higher-order derivatives, hvp, jacobian, grad modes, in-place safety, custom Functions."""
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tinylatent as tl
from tinylatent.autograd import Function


def f64(*shape, requires_grad=True):
    return tl.randn(*shape, dtype=tl.float64, requires_grad=requires_grad)


# ----------------------------------------------------------------------------- "done means"
def test_exp_times_x_gradient():
    x = tl.randn(3, 4, requires_grad=True)
    (x.exp() * x).sum().backward()
    a = x.detach().numpy()
    np.testing.assert_allclose(x.grad.numpy(), np.exp(a) * (1 + a), rtol=1e-6)


def test_chain_of_100k_ops_backward_without_recursion():
    x = tl.randn(3, 4, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0001
    y.sum().backward()
    # float32 rounding over 1e5 multiplications: ~0.2% drift from 1.0001**1e5
    np.testing.assert_allclose(x.grad.numpy(), np.full((3, 4), 1.0001 ** 100_000), rtol=1e-2)


def test_tanh_cubed_second_derivative():
    x = f64(5)
    g, = tl.grad(tl.tanh(x).pow(3).sum(), [x], create_graph=True)
    h, = tl.grad(g.sum(), [x])
    t = np.tanh(x.detach().numpy())
    np.testing.assert_allclose(g.detach().numpy(), 3 * t ** 2 * (1 - t ** 2), rtol=1e-10)
    np.testing.assert_allclose(h.numpy(), (6 * t - 12 * t ** 3) * (1 - t ** 2), rtol=1e-10)


def _mlp_loss(w1, w2, x, y):
    """2-layer MLP with a squared loss, written with matmul / tanh only."""
    h = tl.tanh(tl.matmul(x, w1))           # (N, H)
    out = tl.matmul(h, w2)                  # (N, 1)
    return ((out - y) ** 2).mean()


def test_hvp_of_mlp_loss_matches_finite_differences_of_gradients():
    rng = np.random.default_rng(0)
    x = tl.tensor(rng.standard_normal((8, 3)))
    y = tl.tensor(rng.standard_normal((8, 1)))
    w1, w2 = tl.tensor(rng.standard_normal((3, 5))), tl.tensor(rng.standard_normal((5, 1)))
    v1, v2 = tl.tensor(rng.standard_normal((3, 5))), tl.tensor(rng.standard_normal((5, 1)))
    f = lambda a, b: _mlp_loss(a, b, x, y)  # noqa: E731
    loss, (hv1, hv2) = tl.autograd.hvp(f, [w1, w2], [v1, v2])
    np.testing.assert_allclose(loss.item(), f(w1, w2).item())

    def grads(a, b):
        a, b = a.detach().requires_grad_(), b.detach().requires_grad_()
        return [g.numpy() for g in tl.grad(f(a, b), [a, b])]

    eps = 1e-5
    gp = grads(w1 + eps * v1, w2 + eps * v2)
    gm = grads(w1 - eps * v1, w2 - eps * v2)
    for hv, p, m in zip((hv1, hv2), gp, gm):
        np.testing.assert_allclose(hv.numpy(), (p - m) / (2 * eps), rtol=1e-6, atol=1e-8)


def test_hvp_single_input_quadratic():
    a = np.array([[2.0, 1.0], [1.0, 3.0]])
    A = tl.tensor(a)
    x, v = f64(2), tl.tensor([1.0, -2.0], dtype=tl.float64)
    _, hv = tl.autograd.hvp(lambda z: 0.5 * (z @ (A @ z)), x, v)
    np.testing.assert_allclose(hv.numpy(), a @ v.numpy())


def test_jacobian():
    a = np.random.default_rng(1).standard_normal((2, 3))
    x = f64(3)
    jac = tl.autograd.jacobian(lambda z: tl.tensor(a) @ tl.tanh(z), x)
    t = np.tanh(x.detach().numpy())
    np.testing.assert_allclose(jac.numpy(), a * (1 - t ** 2)[None, :], rtol=1e-12)
    u, w = f64(2), f64(2)
    ju, jw = tl.autograd.jacobian(lambda p, q: p * q + p, [u, w])
    np.testing.assert_allclose(ju.detach().numpy(), np.diag(w.detach().numpy() + 1))
    np.testing.assert_allclose(jw.detach().numpy(), np.diag(u.detach().numpy()))


def test_jacobian_create_graph_is_differentiable():
    x = f64(3)
    jac = tl.autograd.jacobian(lambda z: z ** 3, x, create_graph=True)
    # d/dx trace(diag(3 x^2)) = 6 x
    g, = tl.grad(tl.sum(jac * tl.eye(3, dtype=tl.float64)), [x])
    np.testing.assert_allclose(g.detach().numpy(), 6 * x.detach().numpy())


# ----------------------------------------------------------------------------- accumulation
def test_leaves_accumulate_across_backwards():
    x = f64(3)
    (x * 2).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(3, 5.0))


def test_diamond_graph_sums_paths():
    x = f64(4)
    y = x * 2
    z = (y * y + y).sum()
    z.backward()
    np.testing.assert_allclose(x.grad.detach().numpy(), (2 * 2 * x.detach().numpy() * 2 + 2))


def test_same_input_twice():
    x = f64(3)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.detach().numpy(), 2 * x.detach().numpy())
    x.grad = None
    (x + x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(3, 2.0))


def test_broadcast_gradients_are_reduced_to_input_shapes():
    a = f64(3, 1)
    b = f64(4)
    c = f64(2, 1, 1)
    (a * b + c).sum().backward()
    assert a.grad.shape == (3, 1) and b.grad.shape == (4,) and c.grad.shape == (2, 1, 1)
    np.testing.assert_allclose(a.grad.detach().numpy(),
                               np.full((3, 1), 2 * b.detach().numpy().sum()))
    np.testing.assert_allclose(b.grad.detach().numpy(), np.full(4, 2 * a.detach().numpy().sum()))
    np.testing.assert_allclose(c.grad.numpy(), np.full((2, 1, 1), 12.0))


def test_mixed_dtype_gradients_take_each_inputs_dtype():
    x64 = f64(3)
    x32 = tl.randn(3, requires_grad=True)
    (x64 * x32).sum().backward()
    assert x64.grad.dtype == np.float64 and x32.grad.dtype == np.float32


def test_leaf_grads_never_alias():
    x, y = f64(3), f64(3)
    (x + y).sum().backward()
    x.grad.mul_(2)
    np.testing.assert_array_equal(y.grad.numpy(), np.ones(3))
    # a user-given gradient is not aliased either
    x2, y2 = f64(3), f64(3)
    g = tl.ones(3, dtype=tl.float64)
    (x2 + y2).backward(g)
    g.mul_(0)
    np.testing.assert_array_equal(x2.grad.numpy(), np.ones(3))
    np.testing.assert_array_equal(y2.grad.numpy(), np.ones(3))
    # a leaf that is its own root
    x3 = f64(3)
    g3 = tl.ones(3, dtype=tl.float64)
    x3.backward(g3)
    g3.mul_(0)
    np.testing.assert_array_equal(x3.grad.numpy(), np.ones(3))
    # accumulation writes into x.grad only
    x4 = f64(2)
    keep = tl.ones(2, dtype=tl.float64)
    x4.backward(keep)
    (x4 * 1.0).sum().backward()
    np.testing.assert_array_equal(keep.numpy(), np.ones(2))


def test_leaf_grad_taken_without_copy_is_not_changed_while_another_node_reads_it():
    # Add hands the same gradient to x (a leaf, whose .grad takes it) and to h (a node run
    # later); x's second contribution must not be added into that shared array in place.
    x, y = f64(3), f64(3)
    h = y * 2
    out = ((x + h).exp().sum() + (x * 3).sum()) + (h * 5).sum()
    out.backward()
    e = np.exp(x.detach().numpy() + 2 * y.detach().numpy())
    np.testing.assert_allclose(x.grad.numpy(), e + 3)
    np.testing.assert_allclose(y.grad.numpy(), 2 * e + 10)


def test_grads_of_views_are_writable_and_owned():
    x = f64(2, 3)
    x.sum().backward()                   # Sum's backward is a read-only broadcast view
    assert x.grad.array.flags.writeable
    x.grad.add_(1.0)
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 3), 2.0))


# ----------------------------------------------------------------------------- graph lifetime
def test_retain_graph_allows_second_backward():
    x = f64(3)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    a = x.detach().numpy()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp(a) * (1 + a))


def test_second_backward_through_freed_graph_raises():
    x = f64(3)
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_second_backward_freed_graph_without_saved_values_raises():
    x = f64(3)
    y = (x + 1.0).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_backward_non_scalar_needs_gradient():
    x = f64(3)
    with pytest.raises(RuntimeError, match="only for scalar outputs, got shape \\(3,\\)"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match="gradient has shape \\(2,\\) but output has "
                                           "shape \\(3,\\)"):
        (x * 2).backward(tl.ones(2, dtype=tl.float64))
    (x * 2).backward(tl.ones(3, dtype=tl.float64))
    np.testing.assert_array_equal(x.grad.numpy(), np.full(3, 2.0))


def test_backward_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tl.randn(3).sum().backward()


# ----------------------------------------------------------------------------- tl.grad
def test_grad_does_not_touch_dot_grad():
    x = f64(3)
    g, = tl.grad((x * x).sum(), [x])
    assert x.grad is None
    np.testing.assert_allclose(g.detach().numpy(), 2 * x.detach().numpy())
    g1 = tl.grad((x * 3).sum(), x)
    assert isinstance(g1, tuple)


def test_grad_allow_unused():
    x, y = f64(3), f64(3)
    with pytest.raises(RuntimeError, match="input 1 .* was not used.*allow_unused=True"):
        tl.grad((x * 2).sum(), [x, y])
    gx, gy = tl.grad((x * 2).sum(), [x, y], allow_unused=True)
    assert gy is None
    np.testing.assert_allclose(gx.numpy(), np.full(3, 2.0))


def test_grad_with_grad_outputs_and_intermediate_input():
    x = f64(3)
    h = x * 2
    y = h.exp()
    v = tl.tensor([1.0, 0.0, 2.0], dtype=tl.float64)
    gh, gx = tl.grad(y, [h, x], grad_outputs=v)
    np.testing.assert_allclose(gh.detach().numpy(), v.detach().numpy() * np.exp(h.detach().numpy()))
    np.testing.assert_allclose(gx.detach().numpy(),
                               2 * v.detach().numpy() * np.exp(h.detach().numpy()))


def test_grad_results_never_alias():
    x, y = f64(3), f64(3)
    gx, gy = tl.grad((x + y).sum(), [x, y])
    gx.mul_(2)
    np.testing.assert_array_equal(gy.numpy(), np.ones(3))
    v = tl.ones(3, dtype=tl.float64)
    for out in (x + 0.0, x):             # the gradient reaching x is v itself
        gx, = tl.grad(out, [x], grad_outputs=v)
        gx.mul_(0)
        np.testing.assert_array_equal(v.numpy(), np.ones(3))


def test_grad_same_input_twice():
    x = f64(3)
    g1, g2 = tl.grad((x * x).sum(), [x, x])
    np.testing.assert_allclose(g1.detach().numpy(), 2 * x.detach().numpy())
    np.testing.assert_allclose(g2.detach().numpy(), 2 * x.detach().numpy())


def test_grad_input_must_require_grad():
    with pytest.raises(RuntimeError, match="grad: input 0 does not require grad"):
        tl.grad((f64(2) * 2).sum(), [tl.randn(2)])


def test_create_graph_gives_differentiable_grad():
    x = f64(3)
    (x ** 3).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    g2, = tl.grad(x.grad.sum(), [x])
    np.testing.assert_allclose(g2.detach().numpy(), 6 * x.detach().numpy())


def test_create_graph_leaf_grads_do_not_alias():
    x, y = f64(3), f64(3)
    (x + y).sum().backward(create_graph=True)
    assert x.grad is not y.grad
    with tl.no_grad():
        x.grad.mul_(2)
    np.testing.assert_array_equal(y.grad.numpy(), np.ones(3))


def test_accumulating_into_a_grad_that_a_graph_saved_is_out_of_place():
    x = f64(3)
    (x ** 2).sum().backward(create_graph=True)
    penalty = (x.grad ** 2).sum()             # saves x.grad = 2x
    (x * 3).sum().backward()                  # x.grad becomes 2x + 3, not in place
    penalty.backward()                        # d/dx sum((2x)^2) = 8x
    a = x.detach().numpy()
    np.testing.assert_allclose(x.grad.numpy(), 2 * a + 3 + 8 * a)


def test_third_derivative():
    x = f64(4)
    g1, = tl.grad(tl.sin(x).sum(), [x], create_graph=True)
    g2, = tl.grad(g1.sum(), [x], create_graph=True)
    g3, = tl.grad(g2.sum(), [x])
    np.testing.assert_allclose(g3.detach().numpy(), -np.cos(x.detach().numpy()), rtol=1e-12)


def test_detach_stops_gradient():
    x = f64(3)
    y = (x.detach() * x).sum()
    y.backward()
    np.testing.assert_allclose(x.grad.detach().numpy(), x.detach().numpy())
    assert not x.detach().requires_grad


# ----------------------------------------------------------------------------- grad modes
def test_no_grad_and_enable_grad_context_managers():
    x = f64(3)
    with tl.no_grad():
        y = x * 2
        assert not tl.is_grad_enabled()
        with tl.enable_grad():
            z = x * 2
            assert tl.is_grad_enabled()
        assert not tl.is_grad_enabled()
    assert tl.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad
    with tl.set_grad_enabled(False):
        assert not (x * 2).requires_grad


def test_no_grad_and_enable_grad_decorators():
    x = f64(3)

    @tl.no_grad()
    def f(t):
        return t * 2

    @tl.enable_grad()
    def g(t):
        return t * 2

    @tl.no_grad
    def f_bare(t):
        return t * 2

    @tl.enable_grad
    def g_bare(t):
        return t * 2

    assert not f(x).requires_grad and not f_bare(x).requires_grad
    with tl.no_grad():
        assert g(x).requires_grad and g_bare(x).requires_grad
    assert tl.is_grad_enabled()
    assert f_bare.__name__ == "f_bare"


def test_grad_mode_restored_after_exception():
    with pytest.raises(ValueError):
        with tl.no_grad():
            raise ValueError
    assert tl.is_grad_enabled()


# ----------------------------------------------------------------------------- in-place safety
def test_inplace_change_of_saved_tensor_raises_at_backward():
    a = tl.randn(3, dtype=tl.float64)           # a constant the graph saves (Mul saves it)
    x = f64(3)
    y = (a * x).sum()
    a.mul_(2)
    with pytest.raises(RuntimeError, match="Mul.backward: an input of shape \\(3,\\) saved "
                                           "for the gradient was modified in place"):
        y.backward()


def test_inplace_change_of_saved_output_raises_at_backward():
    x = f64(3)
    e = x.exp()
    y = (e + 1.0).sum()                         # Add saves nothing; Exp saves its output
    with tl.no_grad():
        e.add_(1.0)
    with pytest.raises(RuntimeError, match="Exp.backward: its output .* modified in place"):
        y.backward()


def test_inplace_on_leaf_requiring_grad_raises_outside_no_grad():
    x = f64(3)
    for op in (lambda: x.add_(1.0), lambda: x.mul_(2.0), lambda: x.zero_(),
               lambda: x.copy_(tl.zeros(3, dtype=tl.float64)), lambda: x.__setitem__(0, 1.0)):
        with pytest.raises(RuntimeError, match="in-place change of a leaf tensor that "
                                               "requires grad"):
            op()
    y = x * 2
    with pytest.raises(RuntimeError, match="part of a graph"):
        y.add_(1.0)
    with tl.no_grad():
        x.add_(1.0)
        x.mul_(0.5)
    assert x._version == 2


def test_augmented_assignment_on_grad_tensor_is_out_of_place():
    x = f64(3)
    y = x * 1.0
    y += 2.0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.ones(3))


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(RuntimeError, match="only floating tensors can require grad, got "
                                           "dtype int64"):
        tl.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError, match="only floating"):
        tl.arange(3).requires_grad_()


def test_requires_grad_false_only_on_leaves():
    x = f64(2)
    with pytest.raises(RuntimeError, match="only leaf tensors"):
        (x * 2).requires_grad_(False)


# ----------------------------------------------------------------------------- custom ops
class Cube(Function):
    """y = x^3;  dy/dx = 3 x^2"""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.save_for_backward(x)
        ctx.scale = scale
        return scale * x ** 3

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        assert ctx.needs_input_grad == (True, False)
        return grad * 3.0 * ctx.scale * x * x, None


def test_custom_function_first_and_second_order():
    x = f64(4)
    assert tl.gradcheck(lambda t: Cube.apply(t, 2.0), [x])
    assert tl.gradgradcheck(lambda t: Cube.apply(t, 2.0), [x])
    g, = tl.grad(Cube.apply(x, 1.0).sum(), [x], create_graph=True)
    h, = tl.grad(g.sum(), [x])
    np.testing.assert_allclose(h.detach().numpy(), 6 * x.detach().numpy())


def test_no_graph_when_nothing_requires_grad():
    x = tl.randn(3)
    y = x.exp() * 2
    assert not y.requires_grad and y.grad_fn is None
    z = f64(3).exp()
    assert z.grad_fn is not None and z.grad_fn.fn.__name__ == "Exp"


def test_unbroadcast_helper():
    g = tl.ones(2, 3, 4)
    assert tl.autograd.unbroadcast(g, (3, 1)).shape == (3, 1)
    np.testing.assert_array_equal(tl.autograd.unbroadcast(g, (3, 1)).numpy(), np.full((3, 1),
                                                                                       8.0))
    assert tl.autograd.unbroadcast(g, ()).item() == 24.0
    assert tl.autograd.unbroadcast(g, (2, 3, 4)) is g


def test_gelu_second_derivative_closed_form():
    x = f64(6)
    g, = tl.grad(tl.gelu(x).sum(), [x], create_graph=True)
    h, = tl.grad(g.sum(), [x])
    a = x.detach().numpy()
    pdf = np.exp(-a * a / 2) / math.sqrt(2 * math.pi)
    np.testing.assert_allclose(h.numpy(), pdf * (2 - a * a), rtol=1e-10)


@pytest.mark.parametrize("act", [tl.tanh, tl.sigmoid])
def test_third_derivative_through_fused_backward(act):
    x = f64(4)
    g1, = tl.grad(act(x).sum(), [x], create_graph=True)
    g2, = tl.grad(g1.sum(), [x], create_graph=True)
    g3, = tl.grad(g2.sum(), [x])
    a = x.detach().numpy()
    if act is tl.tanh:
        t = np.tanh(a)
        want = -2 * (1 - t ** 2) * (1 - 3 * t ** 2)
    else:
        s = 1 / (1 + np.exp(-a))
        want = s * (1 - s) * (1 - 6 * s + 6 * s ** 2)
    np.testing.assert_allclose(g3.numpy(), want, rtol=1e-9)


# ----------------------------------------------------------------------------- random graphs
_DAG_OPS = [
    lambda a, b: a + b,
    lambda a, b: a * b,
    lambda a, b: (a - b).tanh(),
    lambda a, b: (a * 0.5).exp() + b.sum(),
    lambda a, b: a.sum(0, keepdims=True) * b,
]


@given(prog=st.lists(st.tuples(st.integers(0, 99), st.integers(0, 99),
                               st.integers(0, len(_DAG_OPS) - 1)), min_size=1, max_size=8),
       n_out=st.integers(1, 3), seed=st.integers(0, 2**31 - 1))
@settings(max_examples=40)
def test_random_graphs_backward_equals_grad_and_finite_differences(prog, n_out, seed):
    """Random DAGs where values are reused: .backward() accumulation (with its no-copy and
    shared-gradient bookkeeping) must equal tl.grad, which gradcheck verifies."""
    rng = np.random.default_rng(seed)
    leaves = [tl.tensor(rng.uniform(-1, 1, (2, 3)), requires_grad=True) for _ in range(3)]

    def run(*ls):
        vals = list(ls)
        for i, j, k in prog:
            vals.append(_DAG_OPS[k](vals[i % len(vals)], vals[j % len(vals)]))
        return sum(v.sum() for v in vals[-n_out:])

    # nested exp can push the output to ~1e7, where central differences lose ~1e-3 to
    # rounding (eps_machine |f| / h) and gradcheck fails on a correct gradient (found:
    # prog [(0, 68, 3), (0, 0, 0), (3, 68, 3), (29, 0, 3), (0, 1, 1)], seed 14877, f = 1.03e7)
    assume(abs(float(run(*leaves).detach().numpy())) < 1e4)
    assert tl.gradcheck(run, leaves)
    grads = tl.grad(run(*leaves), leaves, allow_unused=True)
    run(*leaves).backward()
    for leaf, g in zip(leaves, grads):
        want = np.zeros((2, 3)) if g is None else g.numpy()
        got = np.zeros((2, 3)) if leaf.grad is None else leaf.grad.numpy()
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


class BadShapeGrad(Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(-1)[:1]


def test_backward_returning_a_wrong_shape_names_the_op():
    x = f64(2, 3)
    with pytest.raises(RuntimeError, match=r"BadShapeGrad.backward: a gradient of shape \(1,\) "
                                           r"cannot be reduced to the input shape \(2, 3\)"):
        BadShapeGrad.apply(x).sum().backward()


# ----------------------------------------------------------------------------- several outputs
class SinCos(Function):
    """(sin(s x), cos(s x));  dx = s (g_sin cos(s x) - g_cos sin(s x)), a missing gradient
    (an output not used) arriving as None."""

    @staticmethod
    def forward(ctx, x, *, scale):
        ctx.scale = scale
        ctx.save_for_backward(x)
        return ctx.xp.sin(scale * x), ctx.xp.cos(scale * x)

    @staticmethod
    def backward(ctx, grad_sin, grad_cos):
        (x,) = ctx.saved_tensors
        ctx.seen = (grad_sin is not None, grad_cos is not None)
        s = ctx.scale
        g = 0.0
        if grad_sin is not None:
            g = g + grad_sin * (s * x).cos() * s
        if grad_cos is not None:
            g = g - grad_cos * (s * x).sin() * s
        return g


def test_function_with_several_outputs_first_and_second_order():
    x = f64(5)
    both = lambda t: SinCos.apply(t, scale=1.5)                       # noqa: E731
    assert tl.gradcheck(lambda t: both(t)[0] * both(t)[1] + both(t)[1], [x])
    assert tl.gradgradcheck(lambda t: both(t)[0] ** 2 - 3 * both(t)[1], [x])
    s, c = both(x)
    assert s.grad_fn is c.grad_fn and s.grad_fn.n_outputs == 2
    (g,) = tl.grad((c * c).sum(), [x])
    assert c.grad_fn.seen == (False, True)                            # unused output: None
    np.testing.assert_allclose(g.detach().numpy(), -2 * 1.5 * np.cos(1.5 * x.detach().numpy())
                               * np.sin(1.5 * x.detach().numpy()))


def test_function_with_several_outputs_under_no_grad_returns_plain_tensors():
    with tl.no_grad():
        s, c = SinCos.apply(f64(3), scale=1.0)
    assert s.grad_fn is None and c.grad_fn is None and not s.requires_grad


class TooFewGrads(Function):
    @staticmethod
    def forward(ctx, x, y):
        return x * y

    @staticmethod
    def backward(ctx, grad):
        return grad                                                    # forgot y's gradient


class TooManyGrads(Function):
    @staticmethod
    def forward(ctx, x, *, power):
        return x ** power

    @staticmethod
    def backward(ctx, grad):
        return grad, None                                              # counted `power`


@pytest.mark.parametrize("fn, args", [(TooFewGrads, lambda x: (x, x * 2)),
                                      (TooManyGrads, lambda x: (x,))],
                         ids=["too_few", "too_many"])
def test_backward_returning_the_wrong_number_of_gradients_names_the_op(fn, args):
    x = f64(3)
    kwargs = {"power": 2} if fn is TooManyGrads else {}
    out = fn.apply(*args(x), **kwargs).sum()
    with pytest.raises(RuntimeError, match=rf"{fn.__name__}.backward returned \d "
                                           r"gradient\(s\) for \d positional input"):
        out.backward()


# ----------------------------------------------------------------------------- views
def test_inplace_change_of_base_is_seen_through_a_saved_view():
    x = f64(3, 4)
    w = tl.randn(3, 4, dtype=tl.float64)
    y = (x.reshape(12) * w.reshape(12)).sum()     # Mul saves a view of w
    with tl.no_grad():
        w.mul_(2)
    with pytest.raises(RuntimeError, match="Mul.backward: an input .* modified in place"):
        y.backward()


def test_inplace_change_of_a_view_is_seen_by_a_graph_saving_its_base():
    x = f64(3, 4)
    w = tl.randn(3, 4, dtype=tl.float64)
    y = (x * w).sum()
    w[0].mul_(3)                                   # a basic-slice view of w
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()
    w2 = tl.randn(4, 3, dtype=tl.float64)
    y2 = (x * w2.T).sum()
    w2.T.add_(1.0)                                 # another view of the same memory
    with pytest.raises(RuntimeError, match="modified in place"):
        y2.backward()


def test_inplace_change_through_detach_is_seen():
    x = f64(3)
    e = x.exp()
    y = (e + 1.0).sum()                            # Exp saves its output e
    e.detach().add_(1.0)                           # same memory, outside the graph
    with pytest.raises(RuntimeError, match="Exp.backward: its output .* modified in place"):
        y.backward()


def test_copies_are_not_views():
    x = f64(3, 4)
    w = tl.randn(3, 4, dtype=tl.float64)
    y = (x * w.T.reshape(3, 4)).sum()              # reshape of a transpose copies
    w.T.reshape(3, 4).mul_(5)                      # changes a temporary copy only
    y.backward()
    assert x.grad is not None


# ----------------------------------------------------------------------------- hook points
def test_post_accumulate_grad_hook_sees_the_whole_gradient_once_per_pass():
    """A leaf used by several ops gets its hook once, after every contribution is summed
    (what DistributedDataParallel relies on to start an all-reduce early)."""
    from tinylatent.autograd import register_post_accumulate_grad_hook
    w = tl.tensor([1.0, 2.0], requires_grad=True)
    b = tl.tensor([0.5, 0.5], requires_grad=True)
    seen = []
    handles = [register_post_accumulate_grad_hook(t, lambda t, name=name:
                                                  seen.append((name, t.grad.numpy_host())))
               for t, name in ((w, "w"), (b, "b"))]
    h = w * 3.0 + b                            # w, b feed the first layer ...
    y = (h * w).sum() + (h * h).sum()          # ... and w again, later in the graph
    y.backward()
    assert sorted(name for name, _ in seen) == ["b", "w"]
    got, hv, wv = dict(seen), h.numpy_host(), w.numpy_host()
    np.testing.assert_allclose(got["w"], 7 * hv + 3 * wv)      # h + 3 w + 2 h * 3
    np.testing.assert_allclose(got["b"], wv + 2 * hv)
    np.testing.assert_allclose(got["w"], w.grad.numpy_host())
    seen.clear()
    y2 = (w * w).sum()                         # accumulates: the hook sees the running sum
    y2.backward()
    assert [n for n, _ in seen] == ["w"]
    np.testing.assert_allclose(seen[0][1], w.grad.numpy_host())
    seen.clear()
    tl.grad((w * b).sum(), [w, b])             # grad() fills no .grad: no hook
    w.backward(tl.ones(2))                     # a leaf as the root fires too
    assert [n for n, _ in seen] == ["w"]
    for handle in handles:
        handle.remove()
    seen.clear()
    (w * b).sum().backward()
    assert seen == []


def test_post_accumulate_grad_hooks_fire_last_layer_first():
    """Gradients become final from the output backwards, so hooks let a reduction of the
    last layer's gradient start while earlier layers are still being differentiated."""
    from tinylatent.autograd import register_post_accumulate_grad_hook
    net = tl.nn.Sequential(tl.nn.Linear(3, 4), tl.nn.Tanh(), tl.nn.Linear(4, 2))
    order = []
    for name, p in net.named_parameters():
        register_post_accumulate_grad_hook(p, lambda p, name=name: order.append(name))
    net(tl.randn(5, 3)).sum().backward()
    assert sorted(order) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    assert max(order.index("2.weight"), order.index("2.bias")) < \
        min(order.index("0.weight"), order.index("0.bias"))


def test_queue_callback_runs_once_after_the_pass():
    from tinylatent.autograd import queue_callback, register_post_accumulate_grad_hook
    with pytest.raises(RuntimeError, match="no backward pass is running"):
        queue_callback(lambda: None)
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    y = tl.tensor([3.0], requires_grad=True)
    events = []

    def hook(t):
        events.append("hook")
        if events.count("hook") == 1:
            queue_callback(lambda: events.append(("end", x.grad.numpy_host().tolist(),
                                                  y.grad.numpy_host().tolist())))

    register_post_accumulate_grad_hook(x, hook)
    register_post_accumulate_grad_hook(y, hook)
    (x * y).sum().backward()
    assert events == ["hook", "hook", ("end", [3.0, 3.0], [3.0])]
    with pytest.raises(RuntimeError, match="leaf"):
        register_post_accumulate_grad_hook(x * 2, hook)


# ----------------------------------------------------------------------------- register_hook
def test_register_hook_on_a_leaf_sees_the_summed_gradient_once_and_can_replace_it():
    x = f64(3)
    seen = []

    def clip(g):       # nonlinear: must see the sum of both uses, not each one
        seen.append(g.detach().numpy().copy())
        return g.clamp(-1.0, 1.0)
    handle = x.register_hook(clip)
    y = (x * 3).sum() + (x * x).sum()
    y.backward()
    a = x.detach().numpy()
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], 3 + 2 * a)
    np.testing.assert_allclose(x.grad.numpy(), np.clip(3 + 2 * a, -1, 1))
    (g,) = tl.grad((x * 3).sum() + (x * x).sum(), [x])     # tl.grad gets the hooked value too
    np.testing.assert_allclose(g.numpy(), np.clip(3 + 2 * a, -1, 1))
    handle.remove()
    x.grad = None
    ((x * 3).sum()).backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(3, 3.0))


def test_register_hook_on_an_intermediate_changes_what_flows_upstream():
    torch = pytest.importorskip("torch")
    x = f64(4)
    h = x.exp()
    h.register_hook(lambda g: g * 10)
    seen = []
    h.register_hook(lambda g: seen.append(g.detach().numpy().copy()))   # after the first
    (h.sin().sum() + h.sum()).backward()
    xt = torch.tensor(x.detach().numpy(), requires_grad=True)
    ht = xt.exp()
    ht.register_hook(lambda g: g * 10)
    (ht.sin().sum() + ht.sum()).backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(seen[0], 10 * (np.cos(h.detach().numpy()) + 1), rtol=1e-12)


def test_register_hook_errors():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tl.ones(3).register_hook(lambda g: g)
    x = f64(3)
    x.register_hook(lambda g: g[:2])
    with pytest.raises(RuntimeError, match=r"returned Tensor \(2,\); return None or a Tensor "
                                           r"of shape \(3,\)"):
        x.sum().backward()
