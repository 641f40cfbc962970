"""ViTClassifier (tinylatent/models/mae_finetune.py): exactly MAE's encoder plus a head, so a
loaded encoder gives MAE.encode's features bit for bit; sizes are checked; the classifier
follows the model contract (it is not exported: it takes (images, labels) batches)."""
from __future__ import annotations

import numpy as np
import pytest

import tinylatent as tl
from tinylatent.models import MAE
from tinylatent.models.mae_finetune import ViTClassifier, ViTClassifierConfig

SIZES = dict(image_size=8, patch_size=4, hidden_features=8, num_layers=2, num_heads=2,
             decoder_features=4, decoder_layers=1, decoder_heads=1)


def test_loaded_encoder_gives_the_mae_features_exactly_and_the_head_is_kept():
    tl.manual_seed(0)
    mae = MAE(**SIZES)
    x = tl.tensor(np.random.default_rng(0).random((5, 1, 8, 8)).astype(np.float32))
    tl.manual_seed(1)
    clf = ViTClassifier(mae.config, num_classes=3)
    head = clf.head.weight.detach().numpy().copy()
    assert not np.allclose(clf.encode(x).numpy(), mae.encode(x).numpy())
    clf.load_encoder(mae)
    np.testing.assert_array_equal(clf.encode(x).numpy(), mae.encode(x).numpy())
    np.testing.assert_array_equal(clf.head.weight.detach().numpy(), head)
    assert isinstance(clf.config, ViTClassifierConfig) and clf.config.num_classes == 3
    with pytest.raises(ValueError, match="ViTClassifier.load_encoder: encoder sizes differ"):
        ViTClassifier(mae.config, num_layers=1).load_encoder(mae)


def test_classifier_loss_follows_the_contract_and_trains_every_weight():
    tl.manual_seed(0)
    clf = ViTClassifier(**SIZES, num_classes=3)
    rng = np.random.default_rng(1)
    x = tl.tensor(rng.random((6, 1, 8, 8)).astype(np.float32))
    y = tl.tensor(rng.integers(0, 3, 6))
    loss, metrics = clf.loss((x, y))
    assert loss.shape == () and set(metrics) == {"loss", "accuracy"}
    assert all(not v.requires_grad for v in metrics.values())
    loss.backward()
    assert all(p.grad is not None and np.any(p.grad.numpy() != 0) for p in clf.parameters())
    assert 0 <= clf.accuracy(x, y.numpy()) <= 1
    with pytest.raises(ValueError, match=r"ViTClassifier.loss: expected a batch \(images, "):
        clf.loss(x)
