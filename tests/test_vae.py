"""VAE: the loss against NumPy, KL annealing / free bits, the IWAE bound, a short training."""
import numpy as np
import pytest

import tinylatent as tl
from tinylatent.data import MNIST, DataLoader
from tinylatent.distributions import Bernoulli
from tinylatent.models.vae import VAE, VAEConfig, kl_anneal_weight


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("TINYLATENT_OFFLINE", "1")
    monkeypatch.setenv("TINYLATENT_DATA", str(tmp_path / "cache"))


def numpy_loss(model, x, eps, kl_weight=1.0, free_bits=0.0):
    """The whole forward pass and loss in float64 NumPy, from the model's weights."""
    w = {k: v.numpy().astype(np.float64) for k, v in model.state_dict().items()}

    def lin(name, a):
        return a @ w[f"{name}.weight"].T + w[f"{name}.bias"]
    relu = lambda a: np.maximum(a, 0)  # noqa: E731
    h = relu(lin("enc_hidden", x))
    mu, logvar = lin("enc_mu", h), lin("enc_logvar", h)
    z = mu + np.exp(0.5 * logvar) * eps
    p = 1 / (1 + np.exp(-lin("dec_out", relu(lin("dec_hidden", z)))))
    bce = -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(1).mean()
    kl_dim = 0.5 * (mu ** 2 + np.exp(logvar) - 1 - logvar)
    kl = kl_dim.sum(1).mean()
    kl_term = np.maximum(kl_dim.mean(0), free_bits).sum() if free_bits > 0 else kl
    return bce + kl_weight * kl_term, bce, kl


@pytest.fixture(scope="module")
def mnist_batch():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TINYLATENT_OFFLINE", "1")
        x, _ = MNIST("test", flatten=True).take(np.arange(64))
    return x


@pytest.mark.parametrize("kl_weight,free_bits", [(1.0, 0.0), (0.25, 0.0), (1.0, 0.3),
                                                 (0.5, 50.0)])
def test_loss_matches_numpy(mnist_batch, kl_weight, free_bits):
    tl.manual_seed(0)
    model = VAE(VAEConfig(hidden_features=32, latent_features=5, free_bits=free_bits))
    x = mnist_batch
    loss, metrics = model.loss(x, kl_weight=kl_weight, generator=tl.Generator(11))
    eps = tl.randn((64, 5), generator=tl.Generator(11)).numpy().astype(np.float64)
    ref, bce, kl = numpy_loss(model, x.numpy().astype(np.float64), eps, kl_weight, free_bits)
    np.testing.assert_allclose(loss.item(), ref, rtol=2e-5)
    assert all(isinstance(v, tl.Tensor) and v.shape == () and not v.requires_grad
               for v in metrics.values())            # Tensors: no host sync inside loss
    np.testing.assert_allclose(metrics["bce"].item(), bce, rtol=2e-5)
    np.testing.assert_allclose(metrics["kl"].item(), kl, rtol=2e-4, atol=1e-6)
    np.testing.assert_allclose(metrics["neg_elbo"].item(), bce + kl, rtol=2e-5)
    assert metrics["kl_weight"].item() == kl_weight


def test_kl_anneal_weight():
    assert [kl_anneal_weight(s, 4) for s in (0, 1, 2, 4, 9)] == [0.0, 0.25, 0.5, 1.0, 1.0]
    assert kl_anneal_weight(0, 0) == 1.0


def test_free_bits_stop_the_kl_gradient_below_lambda(mnist_batch):
    """With lambda above every unit's KL, the KL term is a constant K*lambda: no gradient."""
    tl.manual_seed(1)
    model = VAE(VAEConfig(hidden_features=16, latent_features=3, free_bits=100.0))
    loss, m = model.loss(mnist_batch, generator=tl.Generator(2))
    np.testing.assert_allclose((m["loss"] - m["bce"]).item(), 3 * 100.0, rtol=1e-5)
    loss.backward()
    g_fb = {k: p.grad.numpy().copy() for k, p in model.named_parameters()}
    model.zero_grad()
    logits, mu, logvar = model(mnist_batch, generator=tl.Generator(2))
    (-Bernoulli(logits=logits).log_prob(mnist_batch).sum(-1)).mean().backward()
    for k, p in model.named_parameters():
        np.testing.assert_allclose(g_fb[k], p.grad.numpy(), rtol=1e-5, atol=1e-7, err_msg=k)


def test_shapes_and_errors(mnist_batch):
    model = VAE(VAEConfig(hidden_features=16, latent_features=2))
    assert model.sample(5, generator=tl.Generator(0)).shape == (5, 784)
    r = model.reconstruct(mnist_batch).numpy()
    assert r.shape == (64, 784) and r.min() >= 0 and r.max() <= 1
    assert model.latent_grid(4).shape == (16, 784)
    path = model.interpolate(mnist_batch[:3], mnist_batch[3:6], steps=5).numpy()  # (3*5, 784)
    assert path.shape == (15, 784)
    np.testing.assert_allclose(path[0::5], r[:3], rtol=1e-5, atol=1e-6)     # t = 0: x_a
    np.testing.assert_allclose(path[4::5], r[3:6], rtol=1e-5, atol=1e-6)    # t = 1: x_b
    with pytest.raises(ValueError, match=r"VAE.encode: expected x of shape \(B, 784\)"):
        model.encode(tl.zeros(2, 1, 28, 28))
    with pytest.raises(ValueError, match="latent_features=2"):
        VAE(latent_features=3).latent_grid()
    with pytest.raises(ValueError, match="k must be"):
        model.iwae_bound(mnist_batch, k=0)
    assert VAE(in_features=10, latent_features=3).dec_out.out_features == 10   # not hard-coded
    assert model.encode(mnist_batch).shape == (64, 2)                # the posterior mean


@pytest.fixture(scope="module")
def trained():
    """A small VAE trained for a few epochs on the embedded MNIST subset."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TINYLATENT_OFFLINE", "1")
        train, test = MNIST("train", flatten=True), MNIST("test", flatten=True)
    tl.manual_seed(0)
    model = VAE(VAEConfig(hidden_features=128, latent_features=8))
    opt = tl.optim.Adam(model.parameters(), lr=1e-3)

    def test_loss():
        with tl.no_grad():
            tot = sum(model.loss(x, generator=tl.Generator(5))[1]["neg_elbo"].item() * len(x)
                      for x, _ in DataLoader(test, 250))
        return tot / len(test)
    history = [test_loss()]
    loader = DataLoader(train, 64, shuffle=True, generator=tl.Generator(0))
    for _ in range(3):
        for x, _ in loader:
            loss, _ = model.loss(x)
            opt.zero_grad()
            loss.backward()
            opt.step()
        history.append(test_loss())
    return model, test, history


def test_training_decreases_test_loss(trained):
    _, _, history = trained
    # an untrained decoder costs ~ 784 log 2 = 543 nats; a working VAE is far below
    assert history[0] > 450
    assert all(b < a for a, b in zip(history, history[1:])), history
    assert history[-1] < 200, history      # measured: 549 -> 226 -> 205 -> 187


def test_iwae_bound(trained):
    model, test, history = trained
    x, _ = test.take(np.arange(100))
    # k=1 is an unbiased estimate of the ELBO: average many single-sample bounds
    reps = tl.tensor(np.repeat(x.numpy(), 100, axis=0))                     # (100*100, 784)
    k1 = model.iwae_bound(reps, k=1, generator=tl.Generator(3)).numpy()
    with tl.no_grad():
        _, m = model.loss(reps, generator=tl.Generator(4))
    elbo = -m["neg_elbo"].item()   # one-sample BCE + analytic KL, averaged over 10,000 samples
    se = k1.std() / np.sqrt(k1.size)
    assert abs(k1.mean() - elbo) < 5 * se + 0.05, (k1.mean(), elbo, se)
    # the bound tightens with k (Burda et al. 2016, Thm. 1), per image on average
    l1 = k1.reshape(100, 100).mean(1)
    l10 = model.iwae_bound(x, k=10, generator=tl.Generator(5)).numpy()
    l200 = model.iwae_bound(x, k=200, chunk=64, generator=tl.Generator(6)).numpy()
    assert l1.mean() < l10.mean() < l200.mean()
    assert (l200 > l1).mean() > 0.9
    assert l200.mean() - l1.mean() < 30    # a real model: the gap is a few nats, not hundreds
