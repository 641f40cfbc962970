"""Tracking by colorization (tinylatent/models/tracking.py; Vondrick et al. 2018): the
attention copy (eq. 1-2) against its formula and, with identity features at temperature
-> 0, copying the matching pixel exactly; label downsampling and the accuracy; and a training
on coloured Moving MNIST whose label propagation must beat the nearest-pixel (same position)
baseline and the same network at random init, on held-out videos."""
from __future__ import annotations

import numpy as np
import pytest

import tinylatent as tl
from tinylatent.models import TrackingByColorization
from tinylatent.models.tracking import (attention_copy, downsample_labels,
                                        label_propagation_accuracy)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("TINYLATENT_OFFLINE", "1")


def test_attention_copy_matches_the_formula():
    rng = np.random.default_rng(0)
    f_ref, f_tgt = rng.normal(size=(2, 4, 6)), rng.normal(size=(2, 4, 5))
    values = rng.random((2, 3, 6))
    y = attention_copy(tl.tensor(f_ref), tl.tensor(f_tgt), tl.tensor(values), 0.7).numpy()
    for b in range(2):
        for j in range(5):
            a = np.exp(f_ref[b].T @ f_tgt[b, :, j] / 0.7)
            np.testing.assert_allclose(y[b, :, j], values[b] @ (a / a.sum()), rtol=1e-12)
    with pytest.raises(ValueError, match=r"attention_copy: expected f_ref \(B, D, N\)"):
        attention_copy(tl.tensor(f_ref), tl.tensor(f_tgt), tl.tensor(values[:, :, :5]))


def test_identity_features_at_zero_temperature_copy_the_matching_pixel_exactly():
    rng = np.random.default_rng(1)
    n = 12
    f_ref = np.broadcast_to(np.eye(n), (2, n, n))             # cell i's feature: e_i
    moved = np.stack([rng.permutation(n), rng.permutation(n)])   # target cell j shows pi(j)
    f_tgt = np.stack([f_ref[b][:, moved[b]] for b in range(2)])
    colours = rng.random((2, 3, n))
    y = attention_copy(tl.tensor(f_ref), tl.tensor(f_tgt), tl.tensor(colours), 1e-3).numpy()
    expected = np.stack([colours[b][:, moved[b]] for b in range(2)])
    np.testing.assert_array_equal(y, expected)
    # at temperature 1 the same features blur: not a copy
    blurred = attention_copy(tl.tensor(f_ref), tl.tensor(f_tgt), tl.tensor(colours), 1.0)
    assert not np.allclose(blurred.numpy(), expected, atol=1e-2)


def test_downsample_labels_and_accuracy():
    ids = np.zeros((1, 4, 4), np.uint8)
    ids[0, :2, :2] = [[1, 1], [2, 0]]      # cell (0, 0): digit 1 owns 2 of 4 pixels
    ids[0, 0, 2] = 2                       # cell (0, 1): 1 of 4 -> at min_fraction 0.25, 2
    ids[0, 2:, 2:] = 2
    np.testing.assert_array_equal(downsample_labels(ids, 2, 3), [[[1, 2], [0, 2]]])
    np.testing.assert_array_equal(downsample_labels(ids, 2, 3, min_fraction=0.5),
                                  [[[1, 0], [0, 2]]])
    truth = np.array([[[[1, 0]], [[1, 2]], [[0, 2]]]])       # (B=1, T=3, 1, 2)
    pred = np.array([[[[1, 0]], [[1, 1]], [[2, 2]]]])
    np.testing.assert_allclose(label_propagation_accuracy(pred, truth), [0.5, 1.0])
    with pytest.raises(ValueError, match="downsample_labels: 4x4 is not divisible by"):
        downsample_labels(ids, 3, 3)


def test_color_classes_and_reconstruct_keep_frame_zero_and_lightness():
    tl.manual_seed(0)
    model = TrackingByColorization(image_size=8, hidden_channels=(2,), latent_features=3,
                                   num_colors=4)
    rng = np.random.default_rng(2)
    x = tl.tensor(rng.random((2, 3, 3, 8, 8)).astype(np.float32))
    model.fit_colors(x)
    c = model.color_classes(x)
    assert c.shape == (2, 3, 4, 4) and c.min() >= 0 and c.max() < 4
    out = model.reconstruct(x).numpy()
    np.testing.assert_array_equal(out[:, 0], x.numpy()[:, 0])
    with pytest.raises(ValueError, match=r"expected sRGB videos \(B, T >= 2, 3, 8, 8\)"):
        model.loss(x[:, :1])


@pytest.mark.long
def test_tracking_beats_nearest_pixel_and_random_init_on_held_out_videos():
    from tinylatent.data import moving_mnist
    T, size = 6, 48
    train = moving_mnist(600, num_frames=T, size=size, colors=True, generator=0)
    test = moving_mnist(100, num_frames=T, size=size, colors=True, generator=1)
    build = dict(image_size=size, hidden_channels=(16, 32), latent_features=32)
    tl.manual_seed(0)
    model = TrackingByColorization(**build)
    tl.manual_seed(0)
    random_init = TrackingByColorization(**build)
    model.fit_colors(train.videos[:200])
    opt = tl.optim.Adam(model.parameters(), lr=2e-3)
    x = tl.tensor(train.videos)
    for epoch in range(3):
        rng = np.random.default_rng(epoch)
        perm = rng.permutation(len(x))
        for i in range(0, len(x), 16):
            s = int(rng.integers(0, T - 3))                    # a random 4-frame clip
            loss, _ = model.loss(x[perm[i:i + 16]][:, s:s + 4])
            opt.zero_grad()
            loss.backward()
            opt.step()
    truth = downsample_labels(test.ids, model.stride, 3)
    x_te = tl.tensor(test.videos)
    acc = {}
    for name, m in (("trained", model), ("random init", random_init)):
        m.eval()
        acc[name] = label_propagation_accuracy(m.propagate(x_te, truth[:, 0], 3).numpy(),
                                               truth).mean()
    acc["nearest pixel"] = label_propagation_accuracy(
        np.broadcast_to(truth[:, :1], truth.shape), truth).mean()
    # measured: trained 0.703, nearest pixel 0.332, random init 0.0 (its attention is nearly
    # uniform, so every cell gets frame 0's majority label, background)
    assert acc["trained"] > acc["nearest pixel"] + 0.15, acc
    assert acc["trained"] > acc["random init"] + 0.2, acc
