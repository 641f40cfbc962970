"""Flow transforms: inverse(forward(x)) == x, logabsdet == log|det J| of autograd's
Jacobian, and gradchecks of the new differentiable pieces (matrix inverse, log|det|,
the planar inverse's implicit gradient)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinylatent as tl
from tinylatent import nn
from tinylatent.models.flow_image_transforms import (ActNorm, InvertibleConv1x1,
                                                     LogitTransform, MultiScaleTransform,
                                                     Squeeze, logabsdet, matrix_inverse)
from tinylatent.models.flow_transforms import (AffineCoupling, CompositeTransform,
                                               InverseTransform, MaskedAffineAutoregressive,
                                               PlanarFlow, RandomPermutation,
                                               ReversePermutation, alternating_mask,
                                               channel_mask, checkerboard_mask,
                                               planar_inverse, planar_transform)
from tinylatent.models.flows import MLP


class PixelNet(nn.Module):
    """A per-pixel MLP (1x1 convolutions) plus a neighbour average: a small image
    conditioner that does not need nn.Conv2d, so the transforms are tested on their own."""

    def __init__(self, c_in, c_out):
        super().__init__()
        self.mlp = MLP(2 * c_in, 8, c_out, num_hidden=1)

    def forward(self, x):
        nb = 0.5 * (tl.roll(x, 1, axis=2) + tl.roll(x, 1, axis=3))     # sees the neighbours
        h = tl.cat([x, nb], axis=1).permute(0, 2, 3, 1)                 # (B, H, W, 2C)
        return self.mlp(h).permute(0, 3, 1, 2)                          # (B, C_out, H, W)


def _randomise(module, rng, scale=0.5):
    """Zero-initialised layers make a flow the identity; random parameters test more."""
    with tl.no_grad():
        for p in module.parameters():
            p.copy_(tl.tensor(rng.standard_normal(p.shape) * scale, dtype=p.dtype))
    return module


def _vector_transforms(rng, d=5):
    maf = MaskedAffineAutoregressive(d, 16, 2, ordering="random", seed=3)
    return {
        "planar": _randomise(PlanarFlow(d), rng, 1.0),
        "coupling": _randomise(AffineCoupling(alternating_mask(d, 1), MLP(d, 8, 2 * d)), rng),
        "permutation": RandomPermutation(d, seed=1),
        "reverse": ReversePermutation(d),
        "maf": _randomise(maf, rng),
        "maf_scale": _randomise(MaskedAffineAutoregressive(d, 16, 2, ordering="random", seed=5,
                                                           learnable_scale=True), rng),
        "actnorm": _randomise(ActNorm(d), rng),
        "conv1x1": InvertibleConv1x1(d, seed=2),
        "conv1x1_lu": _randomise(InvertibleConv1x1(d, lu=True, seed=2), rng, 0.3),
        "composite": CompositeTransform([_randomise(PlanarFlow(d), rng), ReversePermutation(d),
                                         InverseTransform(_randomise(PlanarFlow(d), rng))]),
    }


def _image_transforms(rng, c=2):
    return {
        "coupling_checkerboard": _randomise(
            AffineCoupling(checkerboard_mask(4, 4, 1), PixelNet(c, 2 * c)), rng),
        "coupling_channel": _randomise(
            AffineCoupling(channel_mask(c, 0), PixelNet(c, 2 * c)), rng),
        "actnorm": ActNorm(c),   # data-dependent initialisation on the first batch
        "conv1x1": InvertibleConv1x1(c, seed=4),
        "conv1x1_lu": _randomise(InvertibleConv1x1(c, lu=True, seed=4), rng, 0.3),
        "squeeze": Squeeze(),
        "logit": LogitTransform(0.05),
    }


def _check_transform(t, x, tol_inv, tol_det=None):
    y, ld = t(x)
    x_rec, ild = t.inverse(y)
    np.testing.assert_allclose(x_rec.detach().numpy(), x.detach().numpy(), atol=tol_inv, rtol=0)
    np.testing.assert_allclose(ild.detach().numpy(), -ld.detach().numpy(),
                               atol=max(tol_inv, 1e-12) * 10)
    if tol_det is None:
        return
    for i in range(x.shape[0]):                                  # per-example Jacobian
        xi = x[i: i + 1]
        jac = tl.autograd.jacobian(lambda v: t(v)[0], xi).numpy().reshape(xi.numel(), -1)
        _, expected = np.linalg.slogdet(jac)
        assert abs(expected - ld.detach().numpy()[i]) < tol_det, (type(t).__name__, expected, ld)


@pytest.mark.parametrize("name", list(_vector_transforms(np.random.default_rng(0))))
def test_vector_transform_inverse_and_logdet_float64(name):
    rng = np.random.default_rng(1)
    t = _vector_transforms(rng)[name].to(tl.float64)
    x = tl.tensor(rng.standard_normal((3, 5)), dtype=tl.float64)
    _check_transform(t, x, 1e-10, 1e-9)


@pytest.mark.parametrize("name", list(_image_transforms(np.random.default_rng(0))))
def test_image_transform_inverse_and_logdet_float64(name):
    rng = np.random.default_rng(2)
    t = _image_transforms(rng)[name].to(tl.float64)
    x = tl.tensor(rng.random((2, 2, 4, 4)) * 0.9 + 0.05, dtype=tl.float64)
    _check_transform(t, x, 1e-10, 1e-9)


@pytest.mark.parametrize("name", list(_vector_transforms(np.random.default_rng(0))))
def test_vector_transform_inverse_float32(name):
    rng = np.random.default_rng(3)
    t = _vector_transforms(rng)[name]
    x = tl.tensor(rng.standard_normal((16, 5)).astype(np.float32))
    _check_transform(t, x, 1e-4)


@pytest.mark.parametrize("name", list(_image_transforms(np.random.default_rng(0))))
def test_image_transform_inverse_float32(name):
    rng = np.random.default_rng(4)
    t = _image_transforms(rng)[name]
    x = tl.tensor((rng.random((8, 2, 4, 4)) * 0.9 + 0.05).astype(np.float32))
    _check_transform(t, x, 1e-4)


def test_multiscale_inverse_logdet_and_shapes():
    rng = np.random.default_rng(5)
    level0 = CompositeTransform([
        _randomise(AffineCoupling(checkerboard_mask(4, 4, 0), PixelNet(1, 2)), rng),
        Squeeze(), ActNorm(4), _randomise(InvertibleConv1x1(4, lu=True), rng, 0.3),
        _randomise(AffineCoupling(channel_mask(4, 1), PixelNet(4, 8)), rng)])
    level1 = CompositeTransform([
        Squeeze(), _randomise(AffineCoupling(channel_mask(8, 0), PixelNet(8, 16)), rng)])
    t = MultiScaleTransform([level0, level1], (1, 4, 4)).to(tl.float64)
    assert t.output_shape((1, 4, 4)) == (16,)
    assert t.shapes == [(2, 2, 2), (8, 1, 1)]
    x = tl.tensor(rng.standard_normal((2, 1, 4, 4)), dtype=tl.float64)
    z, _ = t(x)
    assert z.shape == (2, 16)
    _check_transform(t, x, 1e-10, 1e-9)


def test_actnorm_data_dependent_init_normalises_and_is_saved():
    rng = np.random.default_rng(6)
    x = tl.tensor(rng.standard_normal((64, 3, 5, 5)) * np.array([1, 4, 0.2]).reshape(1, 3, 1, 1)
                  + np.array([2, -1, 0]).reshape(1, 3, 1, 1), dtype=tl.float64)
    a = ActNorm(3).to(tl.float64)
    y, _ = a(x)
    np.testing.assert_allclose(y.detach().numpy().mean(axis=(0, 2, 3)), 0, atol=1e-8)
    np.testing.assert_allclose(y.detach().numpy().std(axis=(0, 2, 3)), 1, atol=1e-4)
    b = ActNorm(3).to(tl.float64)
    b.load_state_dict(a.state_dict())
    np.testing.assert_allclose(b(x * 3.0)[0].detach().numpy(),
                               a(x * 3.0)[0].detach().numpy())   # not re-set


def test_planar_reparameterisation_keeps_it_invertible():
    """w.u_hat > -1 whatever u and w (Rezende & Mohamed 2015, App. A.1): with u = -5 w the
    raw map is not invertible, yet the root-finding inverse still recovers x."""
    rng = np.random.default_rng(7)
    w = tl.tensor(rng.standard_normal(3), dtype=tl.float64)
    u = -5.0 * w
    b = tl.tensor([0.2], dtype=tl.float64)
    x = tl.tensor(rng.standard_normal((50, 3)) * 3, dtype=tl.float64)
    y, ld = planar_transform(x, u, w, b)
    x_rec, ild = planar_inverse(y, u, w, b)
    np.testing.assert_allclose(x_rec.numpy(), x.numpy(), atol=1e-10)
    np.testing.assert_allclose(ild.numpy(), -ld.numpy(), atol=1e-10)


def test_planar_inverse_gradient_is_the_implicit_gradient():
    rng = np.random.default_rng(8)
    y = tl.tensor(rng.standard_normal((3, 2)), dtype=tl.float64, requires_grad=True)
    u = tl.tensor(rng.standard_normal(2), dtype=tl.float64, requires_grad=True)
    w = tl.tensor(rng.standard_normal(2), dtype=tl.float64, requires_grad=True)
    b = tl.tensor([0.1], dtype=tl.float64, requires_grad=True)
    assert tl.gradcheck(lambda *a: planar_inverse(*a), (y, u, w, b), eps=1e-6, atol=1e-6)


@given(n=st.integers(1, 4), batch=st.integers(0, 2), seed=st.integers(0, 2 ** 16))
def test_matrix_inverse_and_logabsdet_gradcheck(n, batch, seed):
    rng = np.random.default_rng(seed)
    shape = (batch, n, n) if batch else (n, n)
    a = rng.standard_normal(shape) + 3.0 * np.eye(n)       # well conditioned
    a = tl.tensor(a, dtype=tl.float64, requires_grad=True)
    np.testing.assert_allclose(logabsdet(a).detach().numpy(),
                               np.linalg.slogdet(a.detach().numpy())[1])
    np.testing.assert_allclose((matrix_inverse(a) @ a).detach().numpy(),
                               np.broadcast_to(np.eye(n), shape), atol=1e-10)
    assert tl.gradcheck(matrix_inverse, (a,))
    assert tl.gradcheck(logabsdet, (a,))
    assert tl.gradgradcheck(logabsdet, (a,))


def test_matrix_ops_reject_non_square():
    with pytest.raises(ValueError, match="logabsdet"):
        logabsdet(tl.ones(2, 3))
    with pytest.raises(ValueError, match="matrix_inverse"):
        matrix_inverse(tl.ones(3))


@given(d=st.integers(1, 6), seed=st.integers(0, 2 ** 16), scale=st.floats(0.1, 10.0))
def test_planar_inverse_converges_for_random_parameters(d, seed, scale):
    """The safeguarded root finding recovers x for any u, w, b, including large ones."""
    rng = np.random.default_rng(seed)
    u, w = (tl.tensor(rng.standard_normal(d) * scale, dtype=tl.float64) for _ in range(2))
    b = tl.tensor(rng.standard_normal(1) * scale, dtype=tl.float64)
    x = tl.tensor(rng.standard_normal((8, d)) * scale, dtype=tl.float64)
    y, ld = planar_transform(x, u, w, b)
    x_rec, ild = planar_inverse(y, u, w, b)
    np.testing.assert_allclose(x_rec.numpy(), x.numpy(), atol=1e-9 * (1 + scale))
    np.testing.assert_allclose(ild.numpy(), -ld.numpy(), atol=1e-8)
