"""tl.autograd.functional (torch.autograd.functional): jacobian, hessian, vjp, jvp, hvp, vhp
against closed forms, float64 central differences, and PyTorch where it is installed."""
import numpy as np
import pytest

import tinylatent as tl
import tinylatent.autograd.functional as AF


def f64(*shape, requires_grad=False, seed=None):
    if seed is not None:
        tl.manual_seed(seed)
    return tl.randn(*shape, dtype=tl.float64, requires_grad=requires_grad)


def two_in_two_out(x, y):
    """(2,3), (3,) -> (2,), (3,): a nonlinear map with a cross term."""
    return (x.tanh() @ y.sin()) * x.sum(1), (x * y).exp().sum(0) + y ** 3


def scalar_of_two(x, y):
    return (x.tanh() @ y.sin()).sum() + (x ** 2).sum() * y.sum() + (y ** 4).sum()


def fd_jacobian(fn, arrays, j, eps=1e-6):
    """Central-difference Jacobian of the flattened outputs of fn w.r.t. arrays[j]."""
    def flat(arrs):
        out = fn(*[tl.tensor(a) for a in arrs])
        outs = out if isinstance(out, tuple) else (out,)
        return np.concatenate([o.numpy().reshape(-1) for o in outs])
    cols = []
    for k in range(arrays[j].size):
        plus = [a.copy() for a in arrays]
        minus = [a.copy() for a in arrays]
        plus[j].reshape(-1)[k] += eps
        minus[j].reshape(-1)[k] -= eps
        cols.append((flat(plus) - flat(minus)) / (2 * eps))
    return np.stack(cols, axis=1)                    # (n_out, n_in_j)


# ----------------------------------------------------------------------------- closed forms
def test_jacobian_of_tanh_of_a_linear_map_is_diag_sech2_times_a():
    A = f64(4, 3, seed=0)
    x = f64(3)
    J = AF.jacobian(lambda z: tl.tanh(A @ z), x)
    expected = (1 - np.tanh(A.numpy() @ x.numpy()) ** 2)[:, None] * A.numpy()
    assert J.shape == (4, 3) and not J.requires_grad
    np.testing.assert_allclose(J.numpy(), expected, rtol=1e-12)


def test_hessian_of_a_quadratic_form_is_a_plus_a_transposed():
    A = f64(4, 4, seed=1)
    x = f64(4)
    H = AF.hessian(lambda z: z @ (A @ z), x)
    np.testing.assert_allclose(H.numpy(), A.numpy() + A.numpy().T, rtol=1e-12)


def test_hvp_vhp_and_jvp_closed_forms():
    x, v = f64(5, seed=2), f64(5)
    y, hv = AF.hvp(lambda z: (z ** 4).sum() / 12, x, v)     # H = diag(x^2)
    np.testing.assert_allclose(hv.numpy(), x.numpy() ** 2 * v.numpy(), rtol=1e-12)
    np.testing.assert_allclose(y.numpy(), (x.numpy() ** 4).sum() / 12, rtol=1e-12)
    _, vh = AF.vhp(lambda z: (z ** 4).sum() / 12, x, v)
    np.testing.assert_allclose(vh.numpy(), hv.numpy(), rtol=1e-12)
    out, jv = AF.jvp(lambda z: z.sin() * z, x, v)      # J = diag(cos x * x + sin x)
    a = x.numpy()
    np.testing.assert_allclose(jv.numpy(), (np.cos(a) * a + np.sin(a)) * v.numpy(),
                               rtol=1e-12)
    np.testing.assert_allclose(out.numpy(), np.sin(a) * a, rtol=1e-12)


def test_vjp_with_v_omitted_for_a_scalar_output_is_the_gradient():
    x = f64(3, 2, seed=3)
    out, g = AF.vjp(lambda z: (z.exp()).sum(), x)
    np.testing.assert_allclose(g.numpy(), np.exp(x.numpy()), rtol=1e-12)
    assert out.shape == () and not g.requires_grad


# ----------------------------------------------------------------------------- vs differences
def test_jacobian_of_tuples_matches_central_differences():
    x, y = f64(2, 3, seed=4), f64(3)
    J = AF.jacobian(two_in_two_out, (x, y))
    assert isinstance(J, tuple) and len(J) == 2 and all(len(r) == 2 for r in J)
    assert J[0][0].shape == (2, 2, 3) and J[0][1].shape == (2, 3)
    assert J[1][0].shape == (3, 2, 3) and J[1][1].shape == (3, 3)
    arrays = [x.numpy(), y.numpy()]
    for j in range(2):
        fd = fd_jacobian(two_in_two_out, arrays, j)
        ours = np.concatenate([J[0][j].numpy().reshape(2, -1), J[1][j].numpy().reshape(3, -1)])
        np.testing.assert_allclose(ours, fd, rtol=1e-6, atol=1e-8)


def test_hessian_of_tuples_matches_differences_of_the_gradient_and_is_symmetric():
    x, y = f64(2, 3, seed=5), f64(3)
    H = AF.hessian(scalar_of_two, (x, y))
    full = np.block([[H[i][j].numpy().reshape(x.numel() if i == 0 else 3, -1)
                      for j in range(2)] for i in range(2)])            # (9, 9)
    np.testing.assert_allclose(full, full.T, rtol=1e-10, atol=1e-12)

    def gradient(a, b):
        return tl.grad(scalar_of_two(a, b), [a, b])

    def grad_flat(a, b):
        a, b = a.detach().requires_grad_(), b.detach().requires_grad_()
        ga, gb = gradient(a, b)
        return tl.cat([ga.reshape(-1), gb.reshape(-1)])
    arrays = [x.numpy(), y.numpy()]
    fd = np.concatenate([fd_jacobian(grad_flat, arrays, j) for j in range(2)], axis=1)
    np.testing.assert_allclose(full, fd, rtol=1e-6, atol=1e-7)
    # hvp and vjp/jvp agree with the full matrices
    vx, vy = f64(2, 3), f64(3)
    vflat = np.concatenate([vx.numpy().reshape(-1), vy.numpy()])
    _, (hx, hy) = AF.hvp(scalar_of_two, (x, y), (vx, vy))
    np.testing.assert_allclose(np.concatenate([hx.numpy().reshape(-1), hy.numpy()]),
                               full @ vflat, rtol=1e-10)
    J = AF.jacobian(two_in_two_out, (x, y))
    Jfull = np.block([[J[i][j].numpy().reshape(2 if i == 0 else 3, -1) for j in range(2)]
                      for i in range(2)])                               # (5, 9)
    _, (j0, j1) = AF.jvp(two_in_two_out, (x, y), (vx, vy))
    np.testing.assert_allclose(np.concatenate([j0.numpy(), j1.numpy()]), Jfull @ vflat,
                               rtol=1e-10)
    u0, u1 = f64(2), f64(3)
    _, (gx, gy) = AF.vjp(two_in_two_out, (x, y), (u0, u1))
    uflat = np.concatenate([u0.numpy(), u1.numpy()])
    np.testing.assert_allclose(np.concatenate([gx.numpy().reshape(-1), gy.numpy()]),
                               uflat @ Jfull, rtol=1e-10)


# ----------------------------------------------------------------------------- create_graph
def test_hvp_create_graph_is_differentiable_and_default_is_not():
    # f = sum x^4 / 12: H v = x^2 v, and d/dx sum(H v) = 2 x v
    x = f64(4, requires_grad=True, seed=6)
    v = f64(4)
    _, hv = AF.hvp(lambda z: (z ** 4).sum() / 12, x, v, create_graph=True)
    assert hv.requires_grad
    (g,) = tl.grad(hv.sum(), [x])
    np.testing.assert_allclose(g.numpy(), 2 * x.detach().numpy() * v.numpy(), rtol=1e-12)
    _, hv0 = AF.hvp(lambda z: (z ** 4).sum() / 12, x, v)
    assert not hv0.requires_grad


def test_jacobian_jvp_vjp_and_hessian_create_graph_reach_the_inputs():
    x = f64(3, requires_grad=True, seed=7)
    v = f64(3)
    a = x.detach().numpy()
    J = AF.jacobian(lambda z: z ** 3, x, create_graph=True)      # diag(3 x^2)
    np.testing.assert_allclose(tl.grad(J.sum(), [x])[0].numpy(), 6 * a, rtol=1e-12)
    _, jv = AF.jvp(lambda z: z ** 3, x, v, create_graph=True)    # 3 x^2 v
    np.testing.assert_allclose(tl.grad(jv.sum(), [x])[0].numpy(), 6 * a * v.numpy(),
                               rtol=1e-12)
    _, g = AF.vjp(lambda z: z ** 3, x, v, create_graph=True)
    np.testing.assert_allclose(tl.grad(g.sum(), [x])[0].numpy(), 6 * a * v.numpy(),
                               rtol=1e-12)
    H = AF.hessian(lambda z: (z ** 4).sum(), x, create_graph=True)   # diag(12 x^2)
    np.testing.assert_allclose(tl.grad(H.sum(), [x])[0].numpy(), 24 * a, rtol=1e-12)


# ----------------------------------------------------------------------------- edge cases
def test_unused_inputs_give_zeros_or_raise_with_strict():
    x, y = f64(3, seed=8), f64(2)
    jx, jy = AF.jacobian(lambda a, b: a * 2, (x, y))
    assert np.all(jy.numpy() == 0) and jy.shape == (3, 2)
    np.testing.assert_allclose(jx.numpy(), 2 * np.eye(3))
    with pytest.raises(RuntimeError, match="independent of input 1"):
        AF.jacobian(lambda a, b: a * 2, (x, y), strict=True)
    # linear f: the Hessian is zero, the gradient does not depend on x at all
    H = AF.hessian(lambda a: (3 * a).sum(), x)
    assert np.all(H.numpy() == 0)
    _, hv = AF.hvp(lambda a: (3 * a).sum(), x, x)
    assert np.all(hv.numpy() == 0)
    with pytest.raises(RuntimeError, match="strict"):
        AF.hvp(lambda a: (3 * a).sum(), x, x, strict=True)
    _, jv = AF.jvp(lambda a: a * 0 + 1, x, x)
    assert np.all(jv.numpy() == 0)


def test_bad_arguments_raise_clear_errors():
    x = f64(3)
    with pytest.raises(RuntimeError, match=r"v\[0\] has shape \(2,\).*\(3,\)"):
        AF.hvp(lambda a: a.sum(), x, f64(2))
    with pytest.raises(RuntimeError, match="v can be omitted only"):
        AF.vjp(lambda a: a * 2, x)
    with pytest.raises(RuntimeError, match="one element"):
        AF.hessian(lambda a: a * 2, x)
    with pytest.raises(TypeError, match="inputs must be a Tensor"):
        AF.jacobian(lambda a: a, np.ones(3))
    with pytest.raises(TypeError, match="floating-point"):
        AF.jacobian(lambda a: a, tl.tensor([1, 2]))
    with pytest.raises(RuntimeError, match="strict=True and create_graph=True"):
        AF.jvp(lambda a: a, x, x, strict=True, create_graph=True)


def test_caller_graph_is_untouched_without_create_graph():
    x = f64(3, requires_grad=True, seed=9)
    J = AF.jacobian(lambda z: z.exp(), x)
    assert not J.requires_grad and x.grad is None


# ----------------------------------------------------------------------------- vs PyTorch
def test_every_function_matches_torch_autograd_functional():
    torch = pytest.importorskip("torch")
    TF = torch.autograd.functional
    x, y = f64(2, 3, seed=10), f64(3)
    vx, vy, u0, u1 = f64(2, 3), f64(3), f64(2), f64(3)
    T = [torch.tensor(t.numpy()) for t in (x, y, vx, vy, u0, u1)]

    def torch_two(a, b):
        return (a.tanh() @ b.sin()) * a.sum(1), (a * b).exp().sum(0) + b ** 3

    def torch_scalar(a, b):
        return (a.tanh() @ b.sin()).sum() + (a ** 2).sum() * b.sum() + (b ** 4).sum()

    def same(ours, theirs):
        if isinstance(theirs, tuple):
            assert isinstance(ours, tuple) and len(ours) == len(theirs)
            for o, t in zip(ours, theirs):
                same(o, t)
        else:
            np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-10, atol=1e-12)

    same(AF.jacobian(two_in_two_out, (x, y)), TF.jacobian(torch_two, tuple(T[:2])))
    same(AF.jacobian(lambda a: two_in_two_out(a, y), x),
         TF.jacobian(lambda a: torch_two(a, T[1]), T[0]))
    same(AF.hessian(scalar_of_two, (x, y)), TF.hessian(torch_scalar, tuple(T[:2])))
    same(AF.vjp(two_in_two_out, (x, y), (u0, u1)),
         TF.vjp(torch_two, tuple(T[:2]), tuple(T[4:6])))
    same(AF.jvp(two_in_two_out, (x, y), (vx, vy)),
         TF.jvp(torch_two, tuple(T[:2]), tuple(T[2:4])))
    same(AF.hvp(scalar_of_two, (x, y), (vx, vy)),
         TF.hvp(torch_scalar, tuple(T[:2]), tuple(T[2:4])))
    same(AF.vhp(scalar_of_two, (x, y), (vx, vy)),
         TF.vhp(torch_scalar, tuple(T[:2]), tuple(T[2:4])))
