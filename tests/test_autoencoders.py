"""Autoencoder family on the embedded real MNIST subset (4,000 train / 1,000 test images).

Each model trains for a few epochs (OMP threads 1) and must reach the figure stated in its
test; the numbers in comments are what we measured with these seeds."""
from __future__ import annotations

import os

import numpy as np
import pytest

import tinylatent as tl
from tinylatent.models.autoencoders import (AEConfig, Autoencoder, ContractiveAE,
                                            ConvAutoencoder, DenoisingAE, SparseAE, corrupt,
                                            fit, jacobian_frobenius_sq, reconstruction_error,
                                            sigmoid_jacobian_frobenius_sq)
from tinylatent.models.classical import PCA
from tinylatent.models.stacked_autoencoder import (LinearAutoencoder, StackedAutoencoder,
                                                   principal_angles)

MNIST = os.path.join(os.path.dirname(tl.__file__), "data", "embedded", "mnist_5k.npz")


@pytest.fixture(scope="module")
def mnist():
    d = np.load(MNIST)
    x_train = tl.tensor(d["train_images"].reshape(4000, -1) / 255.0, dtype=tl.float32)
    x_test = tl.tensor(d["test_images"].reshape(1000, -1) / 255.0, dtype=tl.float32)
    return x_train, x_test


def _train(model_cls, x_train, epochs, lr=3e-3, batch_size=64, **cfg):
    tl.manual_seed(0)
    model = model_cls(**cfg)
    fit(model, x_train, epochs=epochs, lr=lr, batch_size=batch_size, seed=0)
    return model


# --------------------------------------------------------------------- contractive penalty
def test_contractive_closed_form_equals_double_backward():
    """seed 002: ||J_f(x)||_F^2 in closed form for a sigmoid layer == the general double
    backward, values and parameter gradients, to 1e-5 in float64."""
    tl.manual_seed(0)
    cae = ContractiveAE(in_features=30, latent_features=7).double()
    x = tl.rand(5, 30, dtype=tl.float64)
    layer = cae.encoder[0]
    closed = sigmoid_jacobian_frobenius_sq(layer, cae.encode(x))
    general = jacobian_frobenius_sq(cae.encoder, x)
    np.testing.assert_allclose(closed.detach().numpy(), general.detach().numpy(), rtol=1e-5,
                               atol=1e-5)
    g_closed = tl.grad(closed.sum(), [layer.weight, layer.bias])
    g_general = tl.grad(jacobian_frobenius_sq(cae.encoder, x).sum(), [layer.weight, layer.bias])
    for a, b in zip(g_closed, g_general):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)
    # and both equal the Jacobian built column by column by tl.autograd.jacobian
    J = tl.autograd.jacobian(lambda t: cae.encode(t.reshape(1, 30)).reshape(7), x[0])
    assert abs((J * J).sum().item() - closed[0].item()) < 1e-10


def test_jacobian_penalty_of_a_deep_encoder_matches_autograd_jacobian():
    tl.manual_seed(1)
    cae = ContractiveAE(in_features=12, hidden_features=(9,), latent_features=4,
                        activation="tanh").double()
    x = tl.randn(3, 12, dtype=tl.float64)
    pen = cae.jacobian_penalty(x)
    for i in range(3):
        J = tl.autograd.jacobian(lambda t: cae.encode(t.reshape(1, 12)).reshape(4), x[i])
        assert abs((J * J).sum().item() - pen[i].item()) < 1e-10
    with pytest.raises(ValueError, match="closed form needs one sigmoid"):
        ContractiveAE(in_features=12, hidden_features=(9,), latent_features=4,
                      jacobian="closed_form").jacobian_penalty(x.float())
    # the double-backward penalty is differentiable in the parameters: second-order check
    w = cae.encoder[0].weight
    assert tl.gradcheck(lambda t: jacobian_frobenius_sq(
        lambda z: (z @ t.T + cae.encoder[0].bias).tanh() @ cae.encoder[2].weight.T, x),
        (w.detach().requires_grad_(),))


# ------------------------------------------------------------------------- corruptions
def test_corruption_statistics_and_errors():
    x = tl.full((200, 100), 0.5)
    g = tl.Generator(0)
    m = corrupt(x, "masking", 0.3, generator=g).numpy()
    assert abs((m == 0).mean() - 0.3) < 0.01 and set(np.unique(m)) == {0.0, 0.5}
    s = corrupt(x, "salt_pepper", 0.2, generator=g).numpy()
    assert abs((s != 0.5).mean() - 0.2) < 0.01 and abs((s == 1).mean() - 0.1) < 0.01
    n = corrupt(x, "gaussian", 0.1, generator=g).numpy() - 0.5
    assert abs(n.std() - 0.1) < 0.003 and abs(n.mean()) < 0.003
    with pytest.raises(ValueError, match="corrupt: kind"):
        corrupt(x, "blur", 0.1)
    with pytest.raises(ValueError, match="out of range"):
        corrupt(x, "masking", 1.5)


# ------------------------------------------------------------------------ trained models
@pytest.fixture(scope="module")
def plain_and_denoising(mnist):
    x_train, _ = mnist
    cfg = dict(hidden_features=(256,), latent_features=32)
    ae = _train(Autoencoder, x_train, 8, **cfg)
    dae = _train(DenoisingAE, x_train, 8, noise="masking", noise_level=0.5, **cfg)
    return ae, dae


def test_autoencoder_reconstructs_and_denoising_beats_it_on_corrupted_images(
        mnist, plain_and_denoising):
    """Figure: 784-256-32-256-784 AEs, 8 epochs. On test images with half the pixels masked,
    the DAE's error to the clean image is < 0.8x the plain AE's (measured 0.0216 vs 0.0410
    MSE/pixel)."""
    _, x_test = mnist
    ae, dae = plain_and_denoising
    clean_err = reconstruction_error(ae, x_test)
    assert clean_err < 0.02  # measured 0.0135; predicting the mean image gives 0.067
    x_noisy = corrupt(x_test, "masking", 0.5, generator=tl.Generator(1))
    err_ae = reconstruction_error(ae, x_noisy, x_test)
    err_dae = reconstruction_error(dae, x_noisy, x_test)
    print(f"\nFIGURE dae: clean err {clean_err:.4f}; masked 50%: AE {err_ae:.4f}, "
          f"DAE {err_dae:.4f}")
    assert err_dae < 0.8 * err_ae, (err_dae, err_ae)
    loss, metrics = ae.loss(x_test[:10])
    assert set(metrics) == {"loss", "rec"} and loss.shape == ()


def test_sparse_autoencoder_codes(mnist):
    """Figure: ReLU codes of width 128, 5 epochs. The sparse AE (lambda = 0.2) uses < 0.4x as
    many active code units per test image as the plain AE (measured 19.6 vs 60.9), at
    < 25% more reconstruction error (measured 0.0256 vs 0.0222 MSE/pixel)."""
    x_train, x_test = mnist
    cfg = dict(hidden_features=(256,), latent_features=128, code_activation="relu")
    ae = _train(Autoencoder, x_train, 5, **cfg)
    sae = _train(SparseAE, x_train, 5, sparsity_weight=0.2, **cfg)
    with tl.no_grad():
        active_ae = (ae.encode(x_test).numpy() > 0).sum(1).mean()
        active_sae = (sae.encode(x_test).numpy() > 0).sum(1).mean()
    err_ae, err_sae = reconstruction_error(ae, x_test), reconstruction_error(sae, x_test)
    print(f"\nFIGURE sparse: active units AE {active_ae:.1f}, SAE {active_sae:.1f} of 128; "
          f"err AE {err_ae:.4f}, SAE {err_sae:.4f}")
    assert active_sae < 0.4 * active_ae, (active_sae, active_ae)
    assert err_sae < 1.25 * err_ae, (err_sae, err_ae)
    assert set(sae.loss(x_test[:4])[1]) == {"loss", "rec", "l1"}


def test_contractive_autoencoder_has_smaller_jacobian(mnist):
    """Figure: one sigmoid encoder layer, code 64, 5 epochs. The CAE's (lambda = 1) mean
    ||J_f(x)||_F^2 on test images is < 0.7x the plain AE's, at < 10% more error."""
    x_train, x_test = mnist
    ae = _train(Autoencoder, x_train, 5, hidden_features=(), latent_features=64,
                code_activation="sigmoid")
    cae = _train(ContractiveAE, x_train, 5, latent_features=64, contractive_weight=1.0)
    with tl.no_grad():
        j_ae = sigmoid_jacobian_frobenius_sq(ae.encoder[0], ae.encode(x_test)).mean().item()
        j_cae = cae.jacobian_penalty(x_test).mean().item()
    print(f"\nFIGURE cae: ||J||_F^2 AE {j_ae:.3f}, CAE {j_cae:.3f}; err AE "
          f"{reconstruction_error(ae, x_test):.4f}, CAE {reconstruction_error(cae, x_test):.4f}")
    assert j_cae < 0.7 * j_ae, (j_cae, j_ae)
    assert reconstruction_error(cae, x_test) < 1.1 * reconstruction_error(ae, x_test)


def test_linear_autoencoder_spans_pca_subspace(mnist):
    """Figure: a linear AE with a 6-d code (squared error, Adam: 40 epochs at lr 1e-2, 10 at
    1e-3) has a decoder whose column space is within 5 degrees (largest principal angle;
    measured 3.1) of the top-6 PCA subspace (Baldi & Hornik 1989). k = 6 has a wide
    eigengap (eigenvalues 2.31 vs 1.74), so plain SGD gets there in seconds."""
    x_train, _ = mnist
    tl.manual_seed(0)
    lae = LinearAutoencoder(in_features=784, latent_features=6)
    fit(lae, x_train, epochs=40, lr=1e-2, batch_size=128, seed=0)
    fit(lae, x_train, epochs=10, lr=1e-3, batch_size=128, seed=1)  # settle the SGD noise
    U = PCA(6).fit(x_train).components_.numpy().T  # (784, 6)
    angles = np.degrees(principal_angles(lae.decoder[0].weight.detach().numpy(), U))
    print(f"\nFIGURE linear AE vs PCA: principal angles (deg) {np.round(angles, 2)}")
    assert angles.max() < 5.0, angles
    # a random 6-d subspace is nearly orthogonal to it: the test can fail
    rand = np.random.default_rng(0).normal(size=(784, 6))
    assert np.degrees(principal_angles(rand, U)).max() > 60


def test_conv_autoencoder_trains(mnist):
    x_train, x_test = mnist
    model = _train(ConvAutoencoder, x_train, 2, latent_features=32)
    out = model(x_test[:5].reshape(5, 1, 28, 28))
    assert out.shape == (5, 1, 28, 28)
    mean_image_err = float(((x_test - x_train.mean(0)) ** 2).mean().item())
    err = reconstruction_error(model, x_test)
    print(f"\nFIGURE conv AE: err {err:.4f}, mean image {mean_image_err:.4f}")
    assert err < 0.6 * mean_image_err


def test_greedy_layerwise_pretraining_then_finetuning(mnist):
    """seed 000: a sigmoid 784-256-64-16 AE pre-trained layer by layer (3 epochs each) and
    fine-tuned (3 epochs) reconstructs better than the same net from random init trained
    for 6 epochs (measured 0.033 vs 0.055 MSE/pixel)."""
    x_train, x_test = mnist
    cfg = AEConfig(hidden_features=(256, 64), latent_features=16, activation="sigmoid")
    tl.manual_seed(0)
    sae = StackedAutoencoder(cfg)
    histories = sae.pretrain(x_train, epochs=3, lr=3e-3, batch_size=64)
    assert len(histories) == 3 and all(h[-1]["loss"] < h[0]["loss"] for h in histories)
    stacked_err = reconstruction_error(sae, x_test)
    fit(sae, x_train, epochs=3, lr=3e-3, batch_size=64)
    tuned_err = reconstruction_error(sae, x_test)
    scratch = _train(StackedAutoencoder, x_train, 6, config=cfg)
    scratch_err = reconstruction_error(scratch, x_test)
    print(f"\nFIGURE greedy: stacked {stacked_err:.4f}, fine-tuned {tuned_err:.4f}, "
          f"scratch {scratch_err:.4f}")
    assert tuned_err < stacked_err
    assert tuned_err < 0.8 * scratch_err, (tuned_err, scratch_err)


def test_bad_config_errors():
    with pytest.raises(ValueError, match="Autoencoder: activations"):
        Autoencoder(activation="swish")
    with pytest.raises(ValueError, match="recon must be"):
        Autoencoder(recon="l1")
    with pytest.raises(ValueError, match="principal_angles"):
        principal_angles(np.ones((5, 2)), np.ones((4, 2)))
