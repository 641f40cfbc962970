"""Flow models that must learn: 2-D flows on two moons against a kernel-density reference,
the planar-flow VAE posterior, and RealNVP / Glow on dequantised MNIST against the best
diagonal Gaussian in logit space (the simplest flow, fitted exactly)."""
import math

import numpy as np
import pytest

import tinylatent as tl
from tinylatent.data import binarize, dequantize, sample_toy
from tinylatent.models.flow_transforms import planar_inverse
from tinylatent.models.flows import (Flow, ImageFlowConfig, bits_per_dim, glow_mnist, maf_2d,
                                     planar_flow_2d, realnvp_2d, realnvp_mnist)
from tinylatent.models.kernel_density import KernelDensity
from tinylatent.models.planar_vae import PlanarVAE, PlanarVAEConfig


def _fit(model, data, steps, lr, batch, rng):
    opt = tl.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        loss, _ = model.loss(tl.tensor(data[rng.integers(0, len(data), batch)]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


@pytest.fixture(scope="module")
def moons():
    rng = np.random.default_rng(0)
    train, test = sample_toy("moons", 2000, rng), sample_toy("moons", 1000, rng)
    kde = KernelDensity().fit(train).score(test)          # about -2.46 nats
    mu, cov = train.mean(0), np.cov(train.T)               # best single Gaussian
    diff = test - mu
    gauss = float(np.mean(-0.5 * np.einsum("ni,ij,nj->n", diff, np.linalg.inv(cov), diff)
                          - 0.5 * np.log(np.linalg.det(cov)) - math.log(2 * math.pi)))
    return train, test, kde, gauss


@pytest.mark.parametrize("builder,steps,margin", [(realnvp_2d, 400, 0.15), (maf_2d, 400, 0.3)])
def test_2d_flow_test_likelihood_close_to_kde(moons, builder, steps, margin):
    """RealNVP must come within 0.15 nats and MAF within 0.3 nats of the KDE's test
    log-likelihood after a short training (KDE bandwidth chosen on held-out data)."""
    train, test, kde, gauss = moons
    flow = _fit(builder(), train, steps, 3e-3, 256, np.random.default_rng(1))
    with tl.no_grad():
        ll = flow.log_prob(tl.tensor(test)).mean().item()
    assert ll > kde - margin, (ll, kde)
    assert ll > gauss + 0.5, (ll, gauss)


def test_planar_flow_2d_beats_gaussian_and_samples(moons):
    """Planar flows are weak density estimators (rank-one updates), but 16 of them must beat
    the best single Gaussian by 0.3 nats; sampling inverts them by root finding."""
    train, test, kde, gauss = moons
    flow = _fit(planar_flow_2d(16, generator=tl.Generator(0)), train, 250, 1e-2, 256,
                np.random.default_rng(2))
    with tl.no_grad():
        ll = flow.log_prob(tl.tensor(test)).mean().item()
        x = flow.sample(500, generator=tl.Generator(3))
        z, _ = flow(x)
    assert ll > gauss + 0.3, (ll, gauss)
    assert np.all(np.isfinite(x.numpy()))
    assert abs(x.numpy().mean(0) - train.mean(0)).max() < 0.5


def test_planar_vae_log_q_is_the_change_of_variables():
    """log q_K(z_K|x) from the forward chain equals log q_0(f^-1(z_K)) + log|det J_{f^-1}|
    computed by inverting each planar layer by root finding."""
    rng = np.random.default_rng(4)
    vae = PlanarVAE(PlanarVAEConfig(in_features=12, hidden_features=16, latent_features=3,
                                    num_flows=4))
    vae = vae.to(tl.float64)
    with tl.no_grad():
        for p in vae.enc_flow.parameters():
            p.copy_(tl.tensor(rng.standard_normal(p.shape), dtype=tl.float64))
    x = tl.tensor((rng.random((5, 12)) < 0.5).astype(np.float64))
    with tl.no_grad():
        _, zk, log_qk = vae(x, generator=tl.Generator(5))
        mu, logvar, flows = vae.posterior_params(x)
        z, total = zk, tl.zeros(5, dtype=tl.float64)
        for u, w, b in reversed(flows):
            z, ld = planar_inverse(z, u, w, b)
            total = total + ld
        std = tl.exp(0.5 * logvar)
        log_q0 = (-0.5 * ((z - mu) / std) ** 2 - tl.log(std) - 0.5 * math.log(2 * math.pi))
        expected = log_q0.sum(axis=1) + total
    np.testing.assert_allclose(log_qk.numpy(), expected.numpy(), atol=1e-9)


def test_planar_vae_trains_on_binarised_mnist():
    """K = 4 amortised planar flows, 150 steps on 2,000 images: the test -ELBO must drop
    below 200 nats (the independent-Bernoulli baseline is about 207; the untrained model
    is about 545)."""
    train, _ = tl.data.load_mnist(split="train")
    test, _ = tl.data.load_mnist(split="test")
    rng = np.random.default_rng(6)
    x_train = binarize(train[:2000], rng)
    x_test = tl.tensor(binarize(test[:500], np.random.default_rng(7)))
    vae = PlanarVAE(PlanarVAEConfig(hidden_features=200, latent_features=20, num_flows=4))
    _fit(vae, x_train, 150, 2e-3, 100, rng)
    with tl.no_grad():
        neg_elbo = vae.neg_elbo(x_test, generator=tl.Generator(8)).mean().item()
    assert neg_elbo < 200.0, neg_elbo


@pytest.fixture(scope="module")
def dequantised_mnist():
    train, _ = tl.data.load_mnist(split="train")
    test, _ = tl.data.load_mnist(split="test")
    rng = np.random.default_rng(9)
    x_train, x_test = dequantize(train, rng), dequantize(test[:200], rng)

    def logit(x, alpha=1e-6):   # the same logit transform as the flows', with its log-det
        p = alpha + (1 - 2 * alpha) * x.reshape(len(x), -1)
        return np.log(p) - np.log1p(-p), (math.log(1 - 2 * alpha) - np.log(p)
                                         - np.log1p(-p)).sum(1)
    y_train, _ = logit(x_train)
    y_test, logdet = logit(x_test)
    mu, sd = y_train.mean(0), y_train.std(0)
    lp = (-0.5 * ((y_test - mu) / sd) ** 2 - np.log(sd) - 0.5 * math.log(2 * math.pi)).sum(1)
    baseline = bits_per_dim(float((lp + logdet).mean()), 784)      # about 2.6 bits/dim
    return train, x_test, baseline


@pytest.mark.parametrize("builder,steps", [(glow_mnist, 40), (realnvp_mnist, 30)])
def test_image_flow_beats_diagonal_gaussian_bits_per_dim(dequantised_mnist, builder, steps):
    """Small Glow (2 levels x 2 steps) and RealNVP, 16-channel coupling nets, a few dozen
    steps of 32 images: test bits/dim must beat the fitted diagonal Gaussian by 0.15."""
    train, x_test, baseline = dequantised_mnist
    rng = np.random.default_rng(10)
    flow = builder(ImageFlowConfig(hidden_features=16, steps=2))
    with tl.no_grad():
        flow.log_prob(tl.tensor(dequantize(train[:256], rng)))    # ActNorm initialisation
    opt = tl.optim.Adam(flow.parameters(), lr=1e-3)
    for _ in range(steps):
        loss, _ = flow.loss(tl.tensor(dequantize(train[rng.integers(0, len(train), 32)], rng)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with tl.no_grad():
        bpd = bits_per_dim(flow.log_prob(tl.tensor(x_test)).mean().item(), 784)
        x, _ = flow.inverse(flow.base.sample(4, generator=tl.Generator(0)) * 0.7)
    assert bpd < baseline - 0.15, (bpd, baseline)
    assert x.shape == (4, 1, 28, 28) and np.all(np.isfinite(x.numpy()))


def test_flow_api_log_prob_sample_roundtrip():
    flow = realnvp_2d(4, 16)
    assert isinstance(flow, Flow)
    x = flow.sample(7, generator=tl.Generator(0))
    z, logabsdet = flow(x)
    x_back, inv_logabsdet = flow.inverse(z)
    assert x.shape == (7, 2) and flow.log_prob(x).shape == (7,)
    np.testing.assert_allclose(x_back.detach().numpy(), x.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(inv_logabsdet.detach().numpy(), -logabsdet.detach().numpy(),
                               atol=1e-5)
