"""tl.nn.Module, Parameter, containers, Linear, activations and init."""
import math
from collections import OrderedDict

import numpy as np
import pytest

import tinylatent as tl
from tinylatent import nn
from tinylatent.nn import functional as F
from tinylatent.nn import init


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 5)
        self.act = nn.Tanh()
        self.fc2 = nn.Linear(5, 2)
        self.scale = nn.Parameter(tl.ones(2))
        self.register_buffer("count", tl.zeros(1))
        self.register_buffer("scratch", tl.zeros(3), persistent=False)
        self.not_a_param = tl.ones(4)  # a plain Tensor attribute is not registered

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x))) * self.scale


def test_registration_and_traversal():
    m = TwoLayer()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["scale", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in m.parameters())
    assert [n for n, _ in m.named_children()] == ["fc1", "act", "fc2"]
    assert [n for n, _ in m.named_modules()] == ["", "fc1", "act", "fc2"]
    assert [n for n, _ in m.named_buffers()] == ["count", "scratch"]
    assert m.num_parameters() == 2 + 3 * 5 + 5 + 5 * 2 + 2
    assert m.get_submodule("fc1") is m.fc1
    # reassigning a parameter slot to None and a module slot to None
    m.fc2.bias = None
    assert "fc2.bias" not in dict(m.named_parameters())
    with pytest.raises(TypeError, match="Parameter or None"):
        m.fc1.weight = tl.ones(5, 3)
    del m.act
    assert "act" not in dict(m.named_children())


def test_shared_parameter_appears_once():
    lin = nn.Linear(2, 2)
    seq = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(seq.parameters())) == 2
    assert len(list(seq.modules())) == 3  # Sequential, Linear (once), ReLU


def test_setattr_before_init_is_a_clear_error():
    class Bad(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(1, 1)

    with pytest.raises(AttributeError, match="super\\(\\).__init__"):
        Bad()


def test_train_eval_flags_whole_tree():
    m = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(0.5)))
    assert all(mod.training for mod in m.modules())
    assert m.eval() is m
    assert not any(mod.training for mod in m.modules())
    m.train()
    assert all(mod.training for mod in m.modules())


def test_state_dict_round_trip():
    tl.manual_seed(1)
    a = TwoLayer()
    a.count.array[:] = 7
    sd = a.state_dict()
    assert list(sd) == ["scale", "count", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert "scratch" not in sd  # non-persistent buffer
    assert not any(v.requires_grad for v in sd.values())
    tl.manual_seed(2)
    b = TwoLayer()
    w_obj = b.fc1.weight
    result = b.load_state_dict({k: v.numpy().copy() for k, v in sd.items()})
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert b.fc1.weight is w_obj  # loaded in place: an optimizer's references stay valid
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[k].numpy(), v.numpy())
    x = tl.randn(4, 3)
    np.testing.assert_array_equal(a(x).detach().numpy(), b(x).detach().numpy())


def test_load_state_dict_errors_name_the_keys():
    m = TwoLayer()
    sd = m.state_dict()
    missing = {k: v for k, v in sd.items() if k != "fc1.bias"}
    with pytest.raises(RuntimeError, match="missing keys: 'fc1.bias'"):
        m.load_state_dict(missing)
    extra = dict(sd, **{"fc3.weight": tl.zeros(1)})
    with pytest.raises(RuntimeError, match="unexpected keys: 'fc3.weight'"):
        m.load_state_dict(extra)
    wrong = dict(sd, **{"fc2.weight": tl.zeros(3, 5)})
    with pytest.raises(RuntimeError, match=r"size mismatch for 'fc2.weight'.*\(3, 5\).*\(2, 5\)"):
        m.load_state_dict(wrong)
    # strict=False tolerates missing / unexpected, but never a wrong shape
    res = m.load_state_dict(dict(missing, extra=tl.zeros(1)), strict=False)
    assert res.missing_keys == ["fc1.bias"] and res.unexpected_keys == ["extra"]
    with pytest.raises(RuntimeError, match="size mismatch"):
        m.load_state_dict(wrong, strict=False)


def test_zero_grad_and_requires_grad():
    m = TwoLayer()
    m(tl.randn(2, 3)).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad(set_to_none=False)
    assert all(float(p.grad.abs().sum()) == 0.0 for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())


def test_to_dtype_keeps_objects_and_integer_buffers():
    m = nn.Linear(3, 2)
    m.register_buffer("steps", tl.zeros(1, dtype=tl.int64))
    w = m.weight
    m(tl.randn(1, 3)).sum().backward()
    m.to(tl.float64)
    assert m.weight is w and m.weight.dtype == np.float64 and m.weight.grad.dtype == np.float64
    assert m.steps.dtype == np.int64
    assert m(tl.randn(2, 3, dtype=tl.float64)).dtype == np.float64
    m.float()
    assert m.weight.dtype == np.float32
    with pytest.raises(TypeError, match="floating"):
        m.to(tl.int32)


def test_apply_visits_children_then_self():
    seen = []
    m = nn.Sequential(nn.Linear(1, 1), nn.Sequential(nn.ReLU()))
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen == ["Linear", "ReLU", "Sequential", "Sequential"]

    def init_zero(mod):
        if isinstance(mod, nn.Linear):
            init.zeros_(mod.weight)
    m.apply(init_zero)
    assert float(m[0].weight.abs().sum()) == 0.0


def test_repr_like_pytorch():
    m = nn.Sequential(nn.Linear(3, 4), nn.LeakyReLU(0.2),
                      nn.Sequential(nn.Linear(4, 1, bias=False)))
    assert repr(m) == (
        "Sequential(\n"
        "  (0): Linear(in_features=3, out_features=4, bias=True)\n"
        "  (1): LeakyReLU(negative_slope=0.2)\n"
        "  (2): Sequential(\n"
        "    (0): Linear(in_features=4, out_features=1, bias=False)\n"
        "  )\n"
        ")")
    assert repr(nn.ReLU()) == "ReLU()"
    assert repr(nn.Parameter(tl.zeros(1))).startswith("Parameter containing:\n")


def test_containers():
    seq = nn.Sequential(OrderedDict(enc=nn.Linear(2, 3), act=nn.ReLU()))
    assert seq["enc"] is seq[0] and len(seq) == 2 and isinstance(seq[-1], nn.ReLU)
    assert isinstance(seq[:1], nn.Sequential) and len(seq[:1]) == 1
    seq.append(nn.Linear(3, 1))
    assert seq(tl.randn(5, 2)).shape == (5, 1)
    with pytest.raises(IndexError, match="out of range"):
        seq[5]
    ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    ml.insert(0, nn.Tanh())
    assert [type(m).__name__ for m in ml] == ["Tanh", "Linear", "Linear", "Linear"]
    assert [n for n, _ in ml.named_parameters()][:2] == ["1.weight", "1.bias"]
    assert len(list(ml.parameters())) == 6
    md = nn.ModuleDict({"a": nn.Linear(1, 2), "b": nn.ReLU()})
    assert "a" in md and list(md.keys()) == ["a", "b"]
    assert [n for n, _ in md.named_parameters()] == ["a.weight", "a.bias"]
    with pytest.raises(KeyError, match="no module named 'c'"):
        md["c"]


def test_linear_against_numpy_and_gradcheck():
    lin = nn.Linear(4, 3).double()
    x = tl.randn(2, 5, 4, dtype=tl.float64, requires_grad=True)
    y = lin(x)
    ref = x.detach().numpy() @ lin.weight.detach().numpy().T + lin.bias.detach().numpy()
    np.testing.assert_allclose(y.detach().numpy(), ref, rtol=1e-12)
    assert tl.gradcheck(lambda x, w, b: F.linear(x, w, b), [x, lin.weight, lin.bias])
    with pytest.raises(ValueError, match="in_features=4"):
        lin(tl.randn(2, 5, dtype=tl.float64))


def test_linear_default_init_matches_pytorch_bounds():
    tl.manual_seed(0)
    lin = nn.Linear(400, 300)
    bound = 1.0 / math.sqrt(400)  # kaiming_uniform(a=sqrt(5)) on fan_in = 400
    w = lin.weight.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    # U(-b, b) has variance b^2 / 3
    assert abs(w.var() / (bound ** 2 / 3) - 1) < 0.02
    assert np.abs(lin.bias.detach().numpy()).max() <= bound
    assert abs(w.mean()) < 0.01 * bound * 10


def test_init_statistics():
    tl.manual_seed(0)
    w = tl.empty(256, 512)
    fan_in, fan_out = init._calculate_fan_in_and_fan_out(w)
    assert (fan_in, fan_out) == (512, 256)
    assert init._calculate_fan_in_and_fan_out(tl.empty(8, 4, 3, 3)) == (36, 72)
    init.kaiming_uniform_(w, nonlinearity="relu")
    bound = math.sqrt(2.0) * math.sqrt(3.0 / 512)
    assert np.abs(w.numpy()).max() <= bound
    assert abs(w.numpy().std() / (bound / math.sqrt(3)) - 1) < 0.02
    init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    assert abs(w.numpy().std() / math.sqrt(2.0 / 256) - 1) < 0.02
    init.xavier_uniform_(w, gain=init.calculate_gain("tanh"))
    a = 5.0 / 3 * math.sqrt(6.0 / (512 + 256))
    assert np.abs(w.numpy()).max() <= a and abs(w.numpy().std() / (a / math.sqrt(3)) - 1) < 0.02
    init.xavier_normal_(w)
    assert abs(w.numpy().std() / math.sqrt(2.0 / 768) - 1) < 0.02
    init.normal_(w, 3.0, 0.5)
    assert abs(w.numpy().mean() - 3.0) < 0.01 and abs(w.numpy().std() - 0.5) < 0.01
    init.constant_(w, 0.25)
    assert np.all(w.numpy() == 0.25)
    q = tl.empty(6, 10)
    init.orthogonal_(q)
    np.testing.assert_allclose(q.numpy() @ q.numpy().T, np.eye(6), atol=1e-5)
    init.trunc_normal_(w, std=1.0, a=-1.0, b=1.0)
    assert np.abs(w.numpy()).max() <= 1.0
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    with pytest.raises(ValueError, match="unsupported nonlinearity"):
        init.calculate_gain("swishy")
    with pytest.raises(ValueError, match="at least 2 dims"):
        init.xavier_uniform_(tl.empty(5))


def test_init_generator_is_reproducible():
    a, b = tl.empty(3, 3), tl.empty(3, 3)
    init.normal_(a, generator=tl.Generator(5))
    init.normal_(b, generator=tl.Generator(5))
    np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("module, fn", [
    (nn.ReLU(), lambda x: np.maximum(x, 0)),
    (nn.LeakyReLU(0.1), lambda x: np.where(x > 0, x, 0.1 * x)),
    (nn.ELU(0.5), lambda x: np.where(x > 0, x, 0.5 * np.expm1(x))),
    (nn.Tanh(), np.tanh),
    (nn.Sigmoid(), lambda x: 1 / (1 + np.exp(-x))),
    (nn.Softplus(), lambda x: np.log1p(np.exp(x))),
    (nn.SiLU(), lambda x: x / (1 + np.exp(-x))),
    (nn.LogSigmoid(), lambda x: -np.log1p(np.exp(-x))),
    (nn.GELU(), lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))),
    (nn.Softmax(dim=1), lambda x: np.exp(x) / np.exp(x).sum(1, keepdims=True)),
    (nn.LogSoftmax(dim=1), lambda x: x - np.log(np.exp(x).sum(1, keepdims=True))),
    (nn.Identity(), lambda x: x),
])
def test_activation_modules(module, fn):
    x = tl.randn(3, 4, dtype=tl.float64, requires_grad=True)
    np.testing.assert_allclose(module(x).detach().numpy(), fn(x.detach().numpy()), rtol=1e-10,
                               atol=1e-12)
    if not isinstance(module, nn.Identity):
        assert tl.gradcheck(module, [x])


def test_flatten_unflatten():
    x = tl.randn(2, 3, 4, 5)
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 1)(x).shape == (6, 4, 5)
    y = nn.Unflatten(1, (1, 60))(nn.Flatten()(x))
    assert y.shape == (2, 1, 60)
    np.testing.assert_array_equal(y.numpy().reshape(x.shape), x.numpy())


def test_parameter_is_a_tensor_sharing_memory():
    t = tl.zeros(3)
    p = nn.Parameter(t)
    assert isinstance(p, tl.Tensor) and p.requires_grad
    with tl.no_grad():
        p.add_(1.0)
    assert t.numpy().tolist() == [1.0, 1.0, 1.0]
    assert not nn.Parameter(tl.zeros(1), requires_grad=False).requires_grad
    assert type(p * 2) is tl.Tensor  # ops produce plain tensors


def test_deepcopy_gives_independent_parameters():
    import copy
    m = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    m2 = copy.deepcopy(m)
    assert isinstance(m2[0].weight, nn.Parameter) and m2[0].weight.requires_grad
    np.testing.assert_array_equal(m2[0].weight.detach().numpy(), m[0].weight.detach().numpy())
    with tl.no_grad():
        m2[0].weight.add_(1.0)
    assert not np.allclose(m2[0].weight.detach().numpy(), m[0].weight.detach().numpy())
    m2.train()(tl.randn(4, 2))
    assert float(m[1].running_mean.abs().sum()) == 0.0  # buffers are copies too


def test_forward_hooks():
    m = nn.Linear(2, 2)
    seen = []
    h1 = m.register_forward_hook(lambda mod, args, out: seen.append(out.shape))
    h2 = m.register_forward_pre_hook(lambda mod, args: (args[0] * 0.0,))
    y = m(tl.ones(3, 2))
    assert seen == [(3, 2)]
    np.testing.assert_allclose(y.detach().numpy(), np.broadcast_to(m.bias.detach().numpy(), (3, 2)))
    h1.remove()
    h2.remove()
    m(tl.ones(1, 2))
    assert seen == [(3, 2)]


def test_state_dict_through_tl_save_and_load(tmp_path):
    def make():
        return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                             nn.Linear(36, 2))
    a = make()
    x = tl.randn(3, 1, 5, 5)
    a(x)  # updates the batch-norm running statistics
    tl.save(a.state_dict(), tmp_path / "model.npz")
    b = make()
    b.load_state_dict(tl.load(tmp_path / "model.npz"))
    assert b[1].num_batches_tracked.item() == 1
    np.testing.assert_array_equal(a.eval()(x).detach().numpy(), b.eval()(x).detach().numpy())


# ---------------------------------------------------------------------- backward hooks
def _hooked_pair(torch):
    rng = np.random.default_rng(0)
    w1, b1, w2 = rng.normal(size=(4, 3)), rng.normal(size=4), rng.normal(size=(2, 4))
    ours = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2, bias=False)).double()
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(),
                                 torch.nn.Linear(4, 2, bias=False)).double()
    ours.load_state_dict({"0.weight": tl.tensor(w1), "0.bias": tl.tensor(b1),
                          "2.weight": tl.tensor(w2)})
    with torch.no_grad():
        theirs[0].weight.copy_(torch.tensor(w1))
        theirs[0].bias.copy_(torch.tensor(b1))
        theirs[2].weight.copy_(torch.tensor(w2))
    return ours, theirs, rng.normal(size=(5, 3))


def test_full_backward_hooks_see_and_replace_gradients_as_torch():
    torch = pytest.importorskip("torch")
    ours, theirs, x = _hooked_pair(torch)
    seen, seen_t = [], []

    def record(store):
        def hook(module, grad_input, grad_output):
            store.append(("full", [None if g is None else g.detach().numpy().copy()
                                   for g in grad_input],
                          [g.detach().numpy().copy() for g in grad_output]))
            return tuple(None if g is None else g * 3 for g in grad_input)
        return hook

    def pre(store):
        def hook(module, grad_output):
            store.append(("pre", [g.detach().numpy().copy() for g in grad_output]))
            return tuple(g * 0.5 for g in grad_output)
        return hook
    for model, store in ((ours, seen), (theirs, seen_t)):
        model[1].register_full_backward_hook(record(store))
        model[2].register_full_backward_pre_hook(pre(store))
        model[0].register_full_backward_hook(record(store))   # its input needs no grad
    xs = [tl.tensor(x), torch.tensor(x)]
    ((ours(xs[0]) ** 2).sum()).backward()
    ((theirs(xs[1]) ** 2).sum()).backward()
    assert [s[0] for s in seen] == [s[0] for s in seen_t] == ["pre", "full", "full"]
    for a, b in zip(seen, seen_t):
        for ga, gb in zip(a[1:], b[1:]):
            for u, v in zip(ga, gb):
                assert (u is None) == (v is None)
                if u is not None:
                    np.testing.assert_allclose(u, v, rtol=1e-12)
    for p, q in zip(ours.parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-12)


def test_backward_hook_removal_and_wrong_count():
    layer = nn.Linear(3, 2).double()
    calls = []
    handle = layer.register_full_backward_hook(lambda m, gi, go: calls.append(1))
    x = tl.randn(4, 3, dtype=tl.float64, requires_grad=True)
    layer(x).sum().backward()
    handle.remove()
    layer(x).sum().backward()
    assert calls == [1]
    layer.register_full_backward_hook(lambda m, gi, go: (gi[0], gi[0]))
    with pytest.raises(RuntimeError, match="returned 2 gradient\\(s\\) for 1 Tensor input"):
        layer(x).sum().backward()
    with tl.no_grad():                                   # no graph: hooks cost nothing
        assert not layer(x).requires_grad


def test_pytorch_internal_module_paths_name_the_same_classes():
    from tinylatent.nn.modules.linear import Linear, NonDynamicallyQuantizableLinear
    from tinylatent.nn.modules.rnn import LSTM
    assert Linear is NonDynamicallyQuantizableLinear is nn.Linear and LSTM is nn.LSTM
    assert tl.nn.modules.transformer.TransformerEncoderLayer is nn.TransformerEncoderLayer
    assert tl.nn.modules.loss.MSELoss is nn.MSELoss
