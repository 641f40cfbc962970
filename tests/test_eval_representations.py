"""tl.eval.alignment / uniformity (Wang & Isola 2020, eq. 4-5) on hand-computed cases, and
tl.eval.frozen_features (no gradient, eval mode for the call, the mode restored)."""
import numpy as np
import pytest

import tinylatent as tl
from tinylatent import nn
from tinylatent.eval import alignment, frozen_features, uniformity


def test_alignment_and_uniformity_hand_computed():
    z = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    zp = np.array([[0.0, 1.0], [0.0, 1.0], [-1.0, 0.0]])
    # ||z - zp||^2: 2, 0, 0 -> mean 2/3; alpha = 1: sqrt(2)/3
    assert alignment(z, zp) == pytest.approx(2 / 3, rel=1e-12)
    assert alignment(z, zp, alpha=1.0) == pytest.approx(np.sqrt(2) / 3, rel=1e-12)
    # pairwise squared distances 2, 4, 2 -> log((2 e^-4 + e^-8) / 3)
    want = np.log((2 * np.exp(-4.0) + np.exp(-8.0)) / 3)
    assert uniformity(z) == pytest.approx(want, rel=1e-12)
    assert uniformity(3.0 * z, normalize=True) == pytest.approx(want, rel=1e-12)
    assert uniformity(z, t=1.0) == pytest.approx(np.log((2 * np.exp(-2.0) + np.exp(-4.0)) / 3))
    with pytest.raises(ValueError, match="same shape"):
        alignment(z, zp[:2])
    with pytest.raises(ValueError, match="at least 2"):
        uniformity(z[:1])


def test_frozen_features_restores_mode_and_takes_no_gradient():
    tl.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5))
    x = np.random.default_rng(0).random((5, 3)).astype(np.float32)
    seen = []

    def fn(v):
        out = model(v)
        seen.append((model.training, out.requires_grad))
        return out
    feats = frozen_features(fn, x, batch_size=2, module=model)
    assert feats.shape == (5, 4) and model.training                  # restored afterwards
    assert seen == [(False, False)] * 3                              # 3 batches, frozen
    with tl.no_grad():
        np.testing.assert_allclose(feats, model[0](tl.tensor(x)).numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="batch_size"):
        frozen_features(fn, x, batch_size=0)
