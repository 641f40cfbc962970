"""Colorization (tinylatent/models/colorization.py; Zhang et al. 2016): the Lab conversion
against published reference values and a round trip, the ab-bin quantisation and soft
encoding against brute force, the rebalancing weights' normalisation (eq. 4), the annealed
mean (eq. 5), and a training on Colored MNIST (embedded subset) that must beat the gray and
mean-colour baselines on held-out images."""
from __future__ import annotations

import numpy as np
import pytest

import tinylatent as tl
from tinylatent.models import Colorization
from tinylatent.models.colorization import (ab_bins, annealed_mean, lab_to_rgb, quantize,
                                            rebalancing_weights, rgb_to_lab, soft_encode)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("TINYLATENT_OFFLINE", "1")


def _pixels(rgb):
    return np.asarray(rgb, np.float64).T.reshape(3, 1, -1)      # (N, 3) -> (3, 1, N)


def test_lab_matches_reference_values():
    # CIE Lab (D65) of the sRGB primaries, white, black and a mid grey, as tabulated by
    # Bruce Lindbloom's calculator (and skimage.color.rgb2lab)
    rgb = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1], [0, 0, 0], [0.5, 0.5, 0.5]]
    ref = [[53.2408, 80.0925, 67.2032], [87.7347, -86.1827, 83.1793],
           [32.2970, 79.1875, -107.8602], [100, 0, 0], [0, 0, 0], [53.3890, 0, 0]]
    lab = rgb_to_lab(_pixels(rgb))[:, 0].T
    np.testing.assert_allclose(lab, ref, atol=2e-3)


def test_lab_round_trip_and_the_reference_formula():
    rng = np.random.default_rng(0)
    rgb = rng.random((2, 3, 5, 7))
    lab = rgb_to_lab(rgb)
    np.testing.assert_allclose(lab_to_rgb(lab), rgb, atol=1e-9)
    # the textbook formula written out for one pixel, independently of the vectorised code
    r, g, b = rgb[1, :, 3, 4]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    X = (0.4124564 * lin[0] + 0.3575761 * lin[1] + 0.1804375 * lin[2]) / 0.95047
    Y = 0.2126729 * lin[0] + 0.7151522 * lin[1] + 0.0721750 * lin[2]
    Z = (0.0193339 * lin[0] + 0.1191920 * lin[1] + 0.9503041 * lin[2]) / 1.08883
    f = [t ** (1 / 3) if t > 216 / 24389 else (24389 / 27 * t + 16) / 116 for t in (X, Y, Z)]
    np.testing.assert_allclose(lab[1, :, 3, 4],
                               [116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])],
                               rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match=r"rgb_to_lab: expected \(\.\.\., 3, H, W\)"):
        rgb_to_lab(rgb[:, :2])


def test_bins_and_quantisation_match_brute_force():
    centres = ab_bins(10.0)
    assert centres.shape[1] == 2 and len(centres) == len(np.unique(centres, axis=0))
    np.testing.assert_array_equal(centres % 10, 0)                # grid cell centres
    # every centre quantises to itself; ab of sRGB colours to the nearest centre
    np.testing.assert_array_equal(quantize(centres), np.arange(len(centres)))
    ab = rgb_to_lab(_pixels(np.random.default_rng(1).random((5000, 3))))[1:, 0].T
    d2 = ((ab[:, None] - centres[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(quantize(ab), d2.argmin(1))
    # soft encoding: the 5 nearest centres, Gaussian weights (sigma 5) summing to 1
    bins, z = soft_encode(ab)
    np.testing.assert_array_equal(bins, np.argsort(d2, 1, kind="stable")[:, :5])
    w = np.exp(-np.take_along_axis(d2, bins, 1) / 50)
    np.testing.assert_allclose(z, w / w.sum(1, keepdims=True), rtol=1e-9)


def test_rebalancing_weights_are_normalised_under_the_smoothed_distribution():
    centres = ab_bins(10.0).astype(np.float64)
    counts = np.random.default_rng(2).poisson(3.0, len(centres)) * (np.arange(len(centres)) % 3)
    w, p_tilde = rebalancing_weights(counts, centres, lam=0.5, sigma=5.0)
    np.testing.assert_allclose(p_tilde.sum(), 1.0, rtol=1e-12)     # smoothing keeps the mass
    np.testing.assert_allclose(p_tilde @ w, 1.0, rtol=1e-12)       # E_p_tilde[w] = 1
    mix = 0.5 * p_tilde + 0.5 / len(centres)
    np.testing.assert_allclose(w * mix, (w * mix)[0], rtol=1e-12)  # w ~ 1 / mix (eq. 4)
    # the smoothing is the normalised Gaussian kernel applied to the empirical distribution
    g = np.exp(-((centres[:, None] - centres[None]) ** 2).sum(-1) / 50)
    np.testing.assert_allclose(p_tilde, (g / g.sum(0)) @ (counts / counts.sum()), rtol=1e-12)
    # lam = 1: uniform mix, every weight 1
    np.testing.assert_allclose(rebalancing_weights(counts, centres, lam=1.0)[0], 1.0)
    with pytest.raises(ValueError, match="rebalancing_weights: counts must be"):
        rebalancing_weights(counts[:-1], centres)


def test_annealed_mean_interpolates_between_mean_and_mode():
    centres = ab_bins(10.0)
    rng = np.random.default_rng(3)
    raw = rng.normal(size=(2, len(centres), 3, 4))
    raw += 2 * (raw == raw.max(1, keepdims=True))          # a clear mode in every pixel
    logits = tl.tensor(raw)
    p = np.exp(logits.numpy()) / np.exp(logits.numpy()).sum(1, keepdims=True)
    mean = np.einsum("bqhw,qc->bchw", p, centres)
    np.testing.assert_allclose(annealed_mean(logits, centres, 1.0).numpy(), mean, rtol=1e-9)
    mode = centres[logits.numpy().argmax(1)].transpose(0, 3, 1, 2)
    np.testing.assert_allclose(annealed_mean(logits, centres, 1e-2).numpy(), mode, atol=1e-6)


def test_fit_rebalancing_sets_weights_with_unit_expectation_on_the_training_colours():
    from tinylatent.data.colored_mnist import colorize_digits
    x = colorize_digits(np.random.default_rng(0).random((20, 8, 8)), generator=0)[0]
    model = Colorization(image_size=8, hidden_channels=(4,))
    p_tilde = model.fit_rebalancing(x)
    np.testing.assert_allclose(p_tilde @ model.class_weights.numpy(), 1.0, rtol=1e-5)
    assert model.class_weights.numpy().max() > 1 > model.class_weights.numpy().min()
    with pytest.raises(ValueError, match=r"Colorization: expected images \(B, 3 or 1, 8, 8\)"):
        model.encode(tl.tensor(x[:, :2]))


@pytest.mark.slow
def test_colorization_beats_gray_and_mean_colour_on_held_out_colored_mnist():
    from tinylatent.data import load_mnist
    from tinylatent.data.colored_mnist import colorize_digits
    x, _ = load_mnist("mnist", "train")
    x_te, _ = load_mnist("mnist", "test")
    rgb = colorize_digits(x[:600], generator=0)[0]
    rgb_te = colorize_digits(x_te[:300], generator=1)[0]
    tl.manual_seed(0)
    model = Colorization(hidden_channels=(16, 32), grid_step=20.0)   # Q = 76 bins: CPU time
    model.fit_rebalancing(rgb)
    opt = tl.optim.Adam(model.parameters(), lr=3e-3)
    xtr = tl.tensor(rgb)
    for epoch in range(2):
        perm = np.random.default_rng(epoch).permutation(len(rgb))
        for i in range(0, len(rgb), 32):
            loss, _ = model.loss(xtr[perm[i:i + 32]])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    true = rgb_to_lab(rgb_te)[:, 1:]
    err = np.sqrt(((model.predict_ab(tl.tensor(rgb_te)).numpy() - true) ** 2).sum(1)).mean()
    gray = np.sqrt((true ** 2).sum(1)).mean()
    mean_ab = rgb_to_lab(rgb)[:, 1:].mean((0, 2, 3))[None, :, None, None]
    mean_colour = np.sqrt(((true - mean_ab) ** 2).sum(1)).mean()
    # measured: err 28.5 vs gray 37.7, mean colour 37.5 (ab units)
    assert err < 0.85 * min(gray, mean_colour), (err, gray, mean_colour)


@pytest.mark.long
def test_colorization_on_cifar10_when_the_files_are_there():
    """CIFAR-10 is not embedded: skipped unless the user has it (tl.data.load_cifar10)."""
    from tinylatent.models.colorization import ab_error_baselines
    try:
        x, _ = tl.data.load_cifar10("train")
        x_te, _ = tl.data.load_cifar10("test")
    except FileNotFoundError as e:
        pytest.skip(f"CIFAR-10 files absent: {e}")
    rgb, rgb_te = x[:5000] / np.float32(255), x_te[:500] / np.float32(255)
    tl.manual_seed(0)
    # rebalancing off (lambda = 1): it trades ab error for vivid colours (Zhang et al. Sec. 3.1)
    model = Colorization(image_size=32, hidden_channels=(32, 64), rebalance_lambda=1.0)
    opt = tl.optim.Adam(model.parameters(), lr=2e-3)
    xtr = tl.tensor(rgb)
    for i in range(0, len(rgb), 32):
        loss, _ = model.loss(xtr[i:i + 32])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    err = model.ab_error(tl.tensor(rgb_te))
    base = ab_error_baselines(rgb, rgb_te)
    # natural images are mostly unsaturated, so gray is a strong guess (never run here: this
    # machine has no CIFAR-10 files)
    assert err < base["gray"], (err, base)
