"""GLO (tinylatent/models/glo.py): the Laplacian pyramid and its L1 loss, codes on the sphere,
the Gaussian fitted to the codes, encoding by optimisation, and the figure against PCA."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import tinylatent as tl
import tinylatent.nn.functional as F
from tinylatent.data import MNIST
from tinylatent.models import GLO, PCA
from tinylatent.models.glo import lap1_loss, laplacian_pyramid


def test_laplacian_pyramid_is_exact_and_lap1_matches_numpy():
    rng = np.random.default_rng(0)
    x_np = rng.random((3, 1, 28, 28)).astype(np.float32)
    levels = laplacian_pyramid(tl.tensor(x_np), 3)
    assert [tuple(l.shape[2:]) for l in levels] == [(28, 28), (14, 14), (7, 7)]
    # collapse: x = L0 + up(L1 + up(G2)), exactly
    g = levels[-1]
    for band in reversed(levels[:-1]):
        g = band + F.interpolate(g, scale_factor=2, mode="nearest")
    np.testing.assert_allclose(g.numpy(), x_np, atol=1e-6)

    def pyramid_np(x):      # the same pyramid in NumPy: 2x2 means, nearest upsampling
        out = []
        for _ in range(2):
            down = x.reshape(len(x), 1, x.shape[2] // 2, 2, x.shape[3] // 2, 2).mean((3, 5))
            out.append(x - down.repeat(2, axis=2).repeat(2, axis=3))
            x = down
        return out + [x]
    y_np = rng.random((3, 1, 28, 28)).astype(np.float32)
    expected = sum(np.abs(a - b).mean(axis=(1, 2, 3))
                   for a, b in zip(pyramid_np(x_np), pyramid_np(y_np)))
    got = lap1_loss(tl.tensor(x_np), tl.tensor(y_np)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert np.all(lap1_loss(tl.tensor(x_np), tl.tensor(x_np)).numpy() == 0)


def small_mnist(n):
    return MNIST("train", flatten=True).tensors[0].numpy_host()[:n]


def test_codes_start_at_pca_stay_on_the_sphere_and_fit_a_gaussian():
    X = small_mnist(64)
    tl.manual_seed(0)
    m = GLO(num_codes=64, latent_features=5, hidden_features=(16,))
    m.init_codes_pca(tl.tensor(X))
    z_pca = PCA(5).fit(tl.tensor(X)).transform(tl.tensor(X)).numpy()
    z = m.codes.detach().numpy()
    cos = (z * z_pca).sum(1) / np.linalg.norm(z_pca, axis=1)
    np.testing.assert_allclose(cos, 1.0, atol=1e-5)          # the PCA directions, unit length
    opt = tl.optim.Adam(m.parameters(), lr=0.1)
    idx = tl.tensor(np.arange(10, 20))
    loss, metrics = m.loss((tl.tensor(X[10:20]), idx))
    opt.zero_grad()
    loss.backward()
    g = m.codes.grad.numpy()
    assert np.all(g[10:20] != 0) and np.all(g[:10] == 0)     # only the batch's codes
    opt.step()
    m.project_codes()
    np.testing.assert_allclose(np.linalg.norm(m.codes.detach().numpy(), axis=1), 1.0, atol=1e-6)
    mu, sigma = m.fit_gaussian()
    z = m.codes.detach().numpy().astype(np.float64)
    np.testing.assert_allclose(mu, z.mean(0), atol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(z, rowvar=False), atol=1e-5)
    with pytest.raises(ValueError, match="GLO.loss: 65 images without an index"):
        m.loss(tl.zeros(65, 784))


def test_encode_finds_a_better_code_than_the_nearest_training_code():
    tl.manual_seed(0)
    m = GLO(num_codes=32, latent_features=4, hidden_features=(32,))
    z_true = F.normalize(tl.randn(6, 4), dim=1)
    with tl.no_grad():
        x = m.decode(z_true)
    z0 = m.encode(x, steps=0)          # the nearest training code
    z = m.encode(x, steps=200)
    err = lambda c: float(((m.decode(c) - x) ** 2).mean().item())   # noqa: E731
    assert err(z) < 0.1 * err(z0), (err(z), err(z0))
    np.testing.assert_allclose(np.linalg.norm(z.numpy(), axis=1), 1.0, atol=1e-5)


@pytest.mark.long
def test_glo_beats_pca_reconstruction_on_mnist(tmp_path):
    """The issue's figure: examples/glo_mnist.py defaults (32-d codes, Lap1 loss, 100 epochs)
    on the embedded 4,000 training images: train MSE <= PCA-32's (clipped to [0, 1])."""
    spec = importlib.util.spec_from_file_location(
        "glo_example", Path(__file__).resolve().parent.parent / "examples" / "glo_mnist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _, results = module.main(["--out", str(tmp_path)])
    assert results["glo_train_mse"] <= results["pca_train_mse"], results
