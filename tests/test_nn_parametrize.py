"""nn.utils.parametrize, nn.utils.parametrizations (weight_norm, spectral_norm) and the
hook forms nn.utils.weight_norm / spectral_norm: closed forms, and identical trajectories
with PyTorch from the same state dict (float64)."""
import numpy as np
import pytest

import tinylatent as tl
from tinylatent import nn
from tinylatent.nn.utils import parametrizations, parametrize


class Symmetric(nn.Module):
    def forward(self, x):
        return x.triu() + x.triu(1).T


def test_custom_parametrization_chain_assignment_and_removal():
    layer = nn.Linear(3, 3).double()
    parametrize.register_parametrization(layer, "weight", Symmetric())
    w = layer.weight.detach().numpy()
    np.testing.assert_array_equal(w, w.T)
    assert parametrize.is_parametrized(layer, "weight") and type(layer).__name__ == \
        "ParametrizedLinear" and type(nn.Linear(2, 2)) is nn.Linear   # only this instance
    x = tl.randn(2, 3, dtype=tl.float64)
    layer(x).sum().backward()                     # gradients reach the original
    g = layer.parametrizations.weight.original.grad.numpy()
    full = np.tile(x.numpy().sum(0), (3, 1))      # d sum(x W^T) / dW
    sym_grad = np.triu(full) + np.tril(full, -1).T   # W[i,j] (i<j) is read twice
    np.testing.assert_allclose(g, sym_grad, rtol=1e-12)
    with pytest.raises(ValueError, match="changes the tensor from"):
        parametrize.register_parametrization(nn.Linear(3, 2), "weight",
                                             type("Cut", (nn.Module,), {
                                                 "forward": lambda self, x: x[:1]})())
    parametrize.remove_parametrizations(layer, "weight")
    assert type(layer) is nn.Linear and isinstance(layer.weight, nn.Parameter)
    np.testing.assert_array_equal(layer.weight.detach().numpy(), w)
    assert list(layer.state_dict()) == ["bias", "weight"]          # as PyTorch: re-added last


def test_weight_norm_closed_form_and_assignment():
    layer = nn.Conv2d(2, 4, 3).double()
    w0 = layer.weight.detach().numpy().copy()
    parametrizations.weight_norm(layer)
    g = layer.parametrizations.weight.original0.detach().numpy().copy()
    np.testing.assert_allclose(g.reshape(-1), np.linalg.norm(w0.reshape(4, -1), axis=1))
    np.testing.assert_allclose(layer.weight.detach().numpy(), w0, rtol=1e-12)
    layer.weight = tl.tensor(2 * w0)                   # right_inverse: g doubles, v = w
    np.testing.assert_allclose(layer.parametrizations.weight.original0.detach().numpy(),
                               2 * g, rtol=1e-12)
    np.testing.assert_allclose(layer.weight.detach().numpy(), 2 * w0, rtol=1e-12)


def test_spectral_norm_divides_by_the_top_singular_value():
    layer = nn.Linear(6, 5).double()
    w0 = layer.weight.detach().numpy().copy()
    parametrizations.spectral_norm(layer, n_power_iterations=5)
    for _ in range(20):                                 # power iteration converges
        layer(tl.randn(1, 6, dtype=tl.float64))
    w = layer.weight.detach().numpy()
    np.testing.assert_allclose(w, w0 / np.linalg.svd(w0, compute_uv=False)[0], rtol=1e-8)
    np.testing.assert_allclose(np.linalg.svd(w, compute_uv=False)[0], 1.0, rtol=1e-8)
    hook_layer = nn.utils.spectral_norm(nn.Linear(6, 5).double())
    hook_layer.weight_orig.data.copy_(tl.tensor(w0))
    for _ in range(30):
        hook_layer(tl.randn(1, 6, dtype=tl.float64))
    np.testing.assert_allclose(hook_layer.weight.detach().numpy(), w, rtol=1e-8)
    hook_layer.eval()                                   # eval: no power iteration, u v kept
    u = hook_layer.weight_u.numpy().copy()
    hook_layer(tl.randn(1, 6, dtype=tl.float64))
    np.testing.assert_array_equal(hook_layer.weight_u.numpy(), u)


def _torch_twin(torch, build, apply_ours, apply_theirs):
    ours, theirs = build(nn), build(torch.nn)
    ours.double()
    theirs.double()
    apply_ours(ours)
    apply_theirs(theirs)
    ours.load_state_dict({k: tl.tensor(v.detach().numpy()) for k, v in
                          theirs.state_dict().items()})
    assert list(ours.state_dict()) == list(theirs.state_dict())
    return ours, theirs


FORMS = {
    "hook_weight_norm": (lambda m: m.utils.weight_norm, lambda m: m.utils.weight_norm),
    "hook_spectral_norm": (lambda m: m.utils.spectral_norm, lambda m: m.utils.spectral_norm),
    "param_weight_norm": (lambda m: parametrizations.weight_norm,
                          lambda m: m.utils.parametrizations.weight_norm),
    "param_spectral_norm": (lambda m: parametrizations.spectral_norm,
                            lambda m: m.utils.parametrizations.spectral_norm),
}
LAYERS = {
    "linear": (lambda m: m.Linear(5, 4), (3, 5)),
    "conv2d": (lambda m: m.Conv2d(2, 3, 3), (2, 2, 5, 5)),
    "conv_transpose2d": (lambda m: m.ConvTranspose2d(3, 2, 3), (2, 3, 4, 4)),
}


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("form", FORMS)
def test_matches_torch_over_training_steps_and_in_eval(form, layer):
    torch = pytest.importorskip("torch")
    ours_fn, theirs_fn = FORMS[form]
    build, shape = LAYERS[layer]
    ours, theirs = _torch_twin(torch, build, lambda m: ours_fn(nn)(m),
                               lambda m: theirs_fn(torch.nn)(m))
    opt = tl.optim.SGD(ours.parameters(), lr=0.1)
    opt_t = torch.optim.SGD(theirs.parameters(), lr=0.1)
    rng = np.random.default_rng(0)
    for step in range(4):
        if step == 3:
            ours.eval()
            theirs.eval()
        x = rng.normal(size=shape)
        y, yt = ours(tl.tensor(x)), theirs(torch.tensor(x))
        np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), rtol=1e-10,
                                   atol=1e-12)
        opt.zero_grad()
        opt_t.zero_grad()
        (y ** 2).sum().backward()
        (yt ** 2).sum().backward()
        named = dict(theirs.named_parameters())
        for name, p in ours.named_parameters():
            np.testing.assert_allclose(p.grad.numpy(), named[name].grad.numpy(), rtol=1e-9,
                                       atol=1e-12, err_msg=name)
        opt.step()
        opt_t.step()
    sd = theirs.state_dict()
    for k, v in ours.state_dict().items():
        np.testing.assert_allclose(v.numpy(), sd[k].numpy(), rtol=1e-9, atol=1e-12,
                                   err_msg=k)


def test_hook_forms_remove_and_errors():
    layer = nn.utils.weight_norm(nn.Linear(3, 2).double())
    with pytest.raises(RuntimeError, match="already has weight norm"):
        nn.utils.weight_norm(layer)
    w = layer(tl.eye(3, dtype=tl.float64)).detach().numpy() - layer.bias.detach().numpy()
    nn.utils.remove_weight_norm(layer)
    assert sorted(layer.state_dict()) == ["bias", "weight"]
    np.testing.assert_allclose(layer.weight.detach().numpy(), w.T, rtol=1e-12)
    layer = nn.utils.spectral_norm(nn.Linear(3, 2))
    layer(tl.randn(1, 3))
    nn.utils.remove_spectral_norm(layer)
    assert sorted(layer.state_dict()) == ["bias", "weight"]
    with pytest.raises(ValueError, match="spectral_norm of 'weight' not found"):
        nn.utils.remove_spectral_norm(layer)
    with pytest.raises(ValueError, match="no parameter 'kernel'"):
        nn.utils.weight_norm(nn.Linear(2, 2), name="kernel")
