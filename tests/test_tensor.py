"""The Tensor (tinylatent/tensor.py) and devices (backend.py): construction, the dtype rules
stated in tensor.py's docstring, properties, conversions, factories, operators, in-place
methods, and the error messages of bad input."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinylatent as tl
from strategies import broadcast_shapes, shapes


# ----------------------------------------------------------------------------- dtype rules
def test_float32_by_default():
    assert tl.tensor([1.0, 2.0]).dtype == np.float32
    assert tl.tensor(3.5).dtype == np.float32
    assert tl.randn(2).dtype == np.float32
    assert tl.zeros(2).dtype == np.float32 and tl.ones(2, 3).dtype == np.float32
    assert tl.full((2,), 1.5).dtype == np.float32
    assert tl.arange(0.0, 1.0, 0.25).dtype == np.float32
    assert tl.linspace(0, 1, 5).dtype == np.float32 and tl.eye(2).dtype == np.float32


def test_float64_on_request_and_arrays_keep_dtype():
    assert tl.tensor([1.0], dtype=tl.float64).dtype == np.float64
    assert tl.tensor(np.zeros(2)).dtype == np.float64
    assert tl.tensor(np.zeros(2, np.float32)).dtype == np.float32
    assert tl.randn(2, dtype="float64").dtype == np.float64
    assert tl.tensor([1, 2]).dtype == np.int64
    assert tl.tensor([True]).dtype == np.bool_


def test_set_default_dtype():
    try:
        tl.set_default_dtype(tl.float64)
        assert tl.tensor([1.0]).dtype == np.float64 and tl.zeros(1).dtype == np.float64
    finally:
        tl.set_default_dtype(tl.float32)
    with pytest.raises(TypeError, match="set_default_dtype: expected a floating dtype"):
        tl.set_default_dtype(tl.int64)


@pytest.mark.parametrize("scalar", [2, 2.5, True])
def test_python_scalar_never_widens(scalar):
    x32 = tl.randn(3)
    for out in (x32 * scalar, scalar * x32, x32 + scalar, x32 - scalar, scalar - x32,
                x32 / (scalar or 1), x32 ** 2, tl.maximum(x32, scalar), tl.where(x32 > 0,
                                                                                  scalar, x32)):
        assert out.dtype == np.float32


def test_int_tensor_with_float_tensor_takes_float_dtype():
    i = tl.tensor([1, 2, 3])
    for f in (tl.randn(3), tl.randn(3, dtype=tl.float64)):
        assert (i + f).dtype == f.dtype and (f * i).dtype == f.dtype
        assert (i - f).dtype == f.dtype and (f / i).dtype == f.dtype
    assert (tl.tensor([True, False]) * tl.randn(2)).dtype == np.float32


def test_int_tensor_with_python_float_or_true_division_gives_default_dtype():
    i = tl.tensor([1, 2, 3])
    assert (i * 2.5).dtype == np.float32 and (2.5 + i).dtype == np.float32
    assert (i / 2).dtype == np.float32 and (i / i).dtype == np.float32
    assert (i * 2).dtype == np.int64 and (i ** 2).dtype == np.int64
    np.testing.assert_allclose((i / 2).numpy(), [0.5, 1.0, 1.5])


def test_float32_with_float64_gives_float64():
    a, b = tl.randn(2), tl.randn(2, dtype=tl.float64)
    assert (a + b).dtype == np.float64 and (b * a).dtype == np.float64
    assert tl.maximum(a, b).dtype == np.float64
    assert (a + np.ones(2)).dtype == np.float32          # a float array follows the tensor


@given(pair=broadcast_shapes())
def test_binary_result_shape_is_numpy_broadcast(pair):
    sa, sb = pair
    assert (tl.ones(sa) * tl.ones(sb)).shape == np.broadcast_shapes(sa, sb)


# ----------------------------------------------------------------------------- basics
@given(shape=shapes())
def test_properties_and_conversions(shape):
    a = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    t = tl.tensor(a)
    assert t.shape == shape and t.ndim == len(shape) and t.size() == a.shape
    assert all(t.size(d) == a.shape[d] for d in range(-len(shape), len(shape)))
    assert t.numel() == a.size and t.dim() == len(shape)
    assert t.dtype == np.float32 and t.device == tl.device("cpu") and str(t.device) == "cpu"
    assert t.tolist() == a.tolist()
    np.testing.assert_array_equal(np.asarray(t), a)
    np.testing.assert_array_equal(t.numpy(), a)
    assert t.is_leaf and t.grad is None and not t.requires_grad


def test_tensor_copies_but_as_tensor_and_from_numpy_share():
    a = np.zeros(3, np.float32)
    t, s, f = tl.tensor(a), tl.as_tensor(a), tl.from_numpy(a)
    a[0] = 1.0
    assert t.numpy()[0] == 0.0 and s.numpy()[0] == 1.0 and f.numpy()[0] == 1.0
    u = tl.tensor(t)
    t.array[1] = 5.0
    assert u.numpy()[1] == 0.0


def test_item_float_int_bool_index():
    assert tl.tensor([[2.5]]).item() == 2.5 and float(tl.tensor(1.5)) == 1.5
    assert int(tl.tensor(3)) == 3 and bool(tl.tensor(1.0))
    assert [10, 20, 30][tl.tensor(1)] == 20
    with pytest.raises(ValueError, match=r"item: only one-element tensors .* shape \(2,\)"):
        tl.tensor([1.0, 2.0]).item()
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(tl.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="integer tensors of one element"):
        [1, 2][tl.tensor(1.0)]


def test_repr():
    assert repr(tl.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert "dtype=float64" in repr(tl.tensor([1.0], dtype=tl.float64))
    assert "dtype=int64" in repr(tl.tensor([1]))
    assert "requires_grad=True" in repr(tl.tensor([1.0], requires_grad=True))
    assert "grad_fn=Mul" in repr(tl.tensor([1.0], requires_grad=True) * 2)


def test_to_and_type_conversions_are_differentiable():
    x = tl.randn(3, dtype=tl.float64, requires_grad=True)
    y = x.float()
    assert y.dtype == np.float32 and y.requires_grad
    (y * 2).sum().backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad.numpy(), np.full(3, 2.0))
    assert x.to(tl.float64) is x and x.to("cpu") is x
    assert x.to("cpu", copy=True) is not x
    assert tl.tensor([1.5]).long().dtype == np.int64
    assert tl.tensor([1.5]).int().dtype == np.int32
    assert tl.tensor([1.0]).bool().dtype == np.bool_
    assert tl.tensor([1]).double().dtype == np.float64
    assert tl.tensor([1]).type_as(tl.randn(1)).dtype == np.float32


def test_contiguous():
    x = tl.from_numpy(np.ones((3, 4)).T)
    assert not x.is_contiguous()
    c = x.contiguous()
    assert c.is_contiguous() and c.shape == (4, 3)
    assert c.contiguous() is c


def test_factories():
    np.testing.assert_array_equal(tl.arange(5).numpy(), np.arange(5))
    assert tl.arange(5).dtype == np.int64
    np.testing.assert_array_equal(tl.arange(1, 7, 2).numpy(), [1, 3, 5])
    np.testing.assert_allclose(tl.linspace(0, 1, 3).numpy(), [0, 0.5, 1])
    np.testing.assert_array_equal(tl.eye(2, 3).numpy(), np.eye(2, 3))
    assert tl.zeros((2, 3)).shape == (2, 3) and tl.ones(2, 3).shape == (2, 3)
    assert tl.empty(4).shape == (4,)
    x = tl.randn(2, 3, dtype=tl.float64)
    assert tl.zeros_like(x).dtype == np.float64 and tl.ones_like(x).shape == (2, 3)
    assert tl.full_like(x, 7.0).numpy().tolist() == [[7.0] * 3] * 2
    assert tl.zeros(2, requires_grad=True).requires_grad


def test_inplace_methods_under_no_grad():
    p = tl.ones(3, requires_grad=True)
    with tl.no_grad():
        p.add_(tl.ones(3), alpha=2.0)
        p.sub_(1.0)
        p.mul_(2.0)
        p.div_(4.0)
        p.clamp_(max=0.9)
        assert p.detach().numpy().tolist() == pytest.approx([0.9] * 3)
        p.fill_(2.0)
        p.copy_(tl.tensor([1.0, 2.0, 3.0]))
        assert p.detach().numpy().tolist() == [1.0, 2.0, 3.0]
        p.zero_()
        assert p.detach().numpy().tolist() == [0.0] * 3
        p.normal_(0.0, 1.0)
        p.uniform_(2.0, 3.0)
        assert ((p.detach().numpy() >= 2) & (p.detach().numpy() < 3)).all()


def test_inplace_on_plain_tensor_and_iadd():
    x = tl.zeros(2)
    x += 1.0
    x *= 3.0
    x -= 1.0
    x /= 2.0
    np.testing.assert_array_equal(x.numpy(), [1.0, 1.0])


# ----------------------------------------------------------------------------- devices
def test_device_parsing():
    assert tl.device("cpu") == "cpu" and tl.Device("cuda") == tl.Device("cuda:0")
    assert str(tl.Device("cuda:1")) == "cuda:1" and repr(tl.device("cpu")) == "device('cpu')"
    assert hash(tl.device("cpu")) == hash(tl.Device(tl.device("cpu")))


@pytest.mark.parametrize("spec,err,msg", [
    ("gpu", ValueError, "device: unknown device 'gpu'; expected 'cpu', 'cuda' or 'cuda:N'"),
    ("cpu:1", ValueError, "device: 'cpu' takes no index, got 'cpu:1'"),
    (3, TypeError, "device: expected a string such as 'cpu' or 'cuda:0', got 3"),
])
def test_device_parsing_errors(spec, err, msg):
    with pytest.raises(err, match=msg.replace("(", r"\(").replace(")", r"\)")):
        tl.Device(spec)


def test_cuda_without_cupy_says_why():
    from tinylatent import backend
    if backend.cuda_available():
        pytest.skip("CUDA available here")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        tl.zeros(2, device="cuda")


# ----------------------------------------------------------------------------- errors
def test_broadcast_mismatch_names_op_and_shapes():
    with pytest.raises(ValueError, match=r"Add: shapes \(2, 3\) and \(4, 5\) cannot be "
                                         r"broadcast together"):
        tl.randn(2, 3) + tl.randn(4, 5)
    with pytest.raises(ValueError, match=r"Mul: shapes \(3,\) and \(2,\)"):
        tl.randn(3) * tl.randn(2)


def test_clamp_needs_a_bound_and_gelu_mode():
    with pytest.raises(ValueError, match="clamp: at least one of min and max"):
        tl.clamp(tl.randn(2))
    with pytest.raises(ValueError, match="gelu: approximate must be"):
        tl.gelu(tl.randn(2), approximate="erf")


@given(st.lists(st.floats(-10, 10), min_size=1, max_size=5))
def test_comparisons_match_numpy(vals):
    a = tl.tensor(vals, dtype=tl.float64)
    x = np.asarray(vals)
    for got, want in [(a < 0.5, x < 0.5), (a <= 0.5, x <= 0.5), (a > 0, x > 0),
                      (a >= 0, x >= 0), (a == x[0], x == x[0]), (a != x[0], x != x[0]),
                      ((a > 0) | (a < -1), (x > 0) | (x < -1)),
                      ((a > 0) ^ (a > 1), (x > 0) ^ (x > 1))]:
        assert got.dtype == np.bool_
        np.testing.assert_array_equal(got.numpy(), want)
    assert tl.allclose(a, x) and tl.isnan(a).numpy().sum() == 0


def test_methods_are_declared_on_the_class_and_are_the_ops():
    """Tensor's math methods are written in its class body (visible to editors and type
    checkers), each the op of the same name; nothing patches Tensor or autograd from
    outside (issue 10)."""
    import ast
    import inspect
    import textwrap
    cls = ast.parse(textwrap.dedent(inspect.getsource(tl.Tensor))).body[0]
    declared = {n.name for n in cls.body if isinstance(n, ast.FunctionDef)}
    wanted = {"exp", "log", "sum", "mean", "max", "logsumexp", "softmax", "reshape", "permute",
              "transpose", "matmul", "sqrt", "relu", "clamp", "gather", "cumsum", "square",
              "expand_as", "view_as", "std", "var", "topk", "sort", "chunk", "split"}
    assert wanted <= declared, sorted(wanted - declared)
    for module in (tl.ops, tl.autograd, tl.tensor):
        src = inspect.getsource(module)
        assert "setattr(Tensor" not in src and "autograd.Tensor =" not in src
    x = tl.tensor(np.arange(12.0).reshape(3, 4) / 7)
    for name in ("exp", "sum", "logsumexp", "softmax", "sqrt", "cumsum"):
        np.testing.assert_allclose(getattr(x, name)().numpy(),
                                   getattr(tl, name)(x).numpy())
    np.testing.assert_allclose(x.sum(1, keepdims=True).numpy(), tl.sum(x, 1, True).numpy())


def test_numpy_on_a_tensor_that_requires_grad_raises_as_in_pytorch():
    x = tl.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"requires grad; use tensor.detach\(\).numpy\(\)"):
        x.numpy()
    a = x.detach().numpy()
    a[0] = 5.0                                     # detach().numpy() shares memory, as in torch
    assert x.detach().numpy()[0] == 5.0
    np.testing.assert_array_equal(x.numpy(force=True), a)
    assert isinstance((x * 2).detach().numpy(), np.ndarray)


def test_from_dlpack_shares_memory_with_numpy_and_torch():
    a = np.arange(6.0).reshape(2, 3)
    t = tl.from_dlpack(a)
    assert t.shape == (2, 3) and not t.requires_grad
    a[0, 0] = 7.0
    assert t.numpy()[0, 0] == 7.0
    torch = pytest.importorskip("torch")
    u = torch.arange(4, dtype=torch.float64)
    v = tl.from_dlpack(u)
    u[1] = 9.0
    np.testing.assert_array_equal(v.numpy(), [0.0, 9.0, 2.0, 3.0])
    back = torch.from_dlpack(v)                    # and the other way round
    np.testing.assert_array_equal(back.numpy(), v.numpy())
    with pytest.raises(TypeError, match="from_dlpack: expected"):
        tl.from_dlpack([1, 2])


def test_more_pytorch_tensor_names_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 4))
    x, xt = tl.tensor(a), torch.tensor(a)
    same = np.testing.assert_allclose
    for fn in (lambda t: t.exp_(), lambda t: t.abs_().sqrt_().log_(), lambda t: t.neg_(),
               lambda t: t.floor_(), lambda t: t.clamp_(-0.5, 0.5).erfinv_(),
               lambda t: t.sigmoid_()):
        same(fn(x.clone()).numpy(), fn(xt.clone()).numpy(), rtol=1e-12)
    idx = rng.integers(0, 4, size=(3, 1))
    same(tl.zeros(3, 4).scatter_(1, tl.tensor(idx), 1.0).numpy(),
         torch.zeros(3, 4).scatter_(1, torch.tensor(idx), 1.0).numpy())
    src = rng.normal(size=(3, 4))
    idx2 = rng.integers(0, 3, size=(2, 4))
    same(tl.zeros(3, 4, dtype=tl.float64).scatter_(0, tl.tensor(idx2), tl.tensor(src)).numpy(),
         torch.zeros(3, 4, dtype=torch.float64).scatter_(0, torch.tensor(idx2),
                                                         torch.tensor(src)).numpy())
    same(tl.zeros(5, 4, dtype=tl.float64).index_copy_(0, tl.tensor([4, 0, 2]), x).numpy(),
         torch.zeros(5, 4, dtype=torch.float64).index_copy_(0, torch.tensor([4, 0, 2]),
                                                            xt).numpy())
    for fn in (lambda t: t.mT, lambda t: t.ravel(), lambda t: t.fliplr(), lambda t: t.flipud(),
               lambda t: t.clamp_min(0.1), lambda t: t.clamp_max(0.1), lambda t: t.diag(),
               lambda t: t.diagonal(1), lambda t: t.prod(1), lambda t: t.median(),
               lambda t: t.median(1).values, lambda t: t[0].dot(t[1]),
               lambda t: t.where(t > 0, -t), lambda t: t.unbind(1)[2]):
        same(fn(x).numpy(), fn(xt).numpy(), rtol=1e-12)
    assert x.median(1).indices.numpy().tolist() == xt.median(1).indices.numpy().tolist()
    u = tl.tensor([3, 1, 3, 2, 1])
    ut = torch.tensor([3, 1, 3, 2, 1])
    for ours, theirs in zip(u.unique(return_inverse=True, return_counts=True),
                            ut.unique(return_inverse=True, return_counts=True)):
        assert ours.numpy().tolist() == theirs.numpy().tolist()
    c = [1, 1, 2, 2, 3, 1, 1, 2]
    for ours, theirs in zip(tl.tensor(c).unique_consecutive(return_inverse=True,
                                                            return_counts=True),
                            torch.tensor(c).unique_consecutive(return_inverse=True,
                                                               return_counts=True)):
        assert ours.numpy().tolist() == theirs.numpy().tolist()
    assert x.pin_memory() is x and not x.is_xpu and not x.is_mps
    # the legacy typed constructors, also as type() arguments
    assert tl.FloatTensor(2, 3).shape == (2, 3) and tl.FloatTensor(2, 3).dtype == np.float32
    assert tl.LongTensor([1, 2]).numpy().tolist() == [1, 2]
    assert x.type(tl.FloatTensor).dtype == np.float32
    assert x.type(tl.DoubleTensor).dtype == np.float64
    with pytest.raises(RuntimeError, match="exp_: in-place change of a leaf"):
        tl.zeros(2, requires_grad=True).exp_()


def test_cuda_seed_functions_seed_the_one_generator():
    tl.cuda.manual_seed_all(3)
    a = tl.randn(4).numpy()
    tl.manual_seed(3)
    np.testing.assert_array_equal(a, tl.randn(4).numpy())
    assert tl.backends.mps.is_available() is False
