"""The masked autoencoder (tinylatent/models/mae.py; He et al. 2022): exact properties of
patchify / random masking / unshuffle, the encoder's blindness to masked patches, and a
training on the embedded MNIST subset that must beat the per-patch-mean baseline."""
from __future__ import annotations

import numpy as np
import pytest

import tinylatent as tl
from tinylatent.models import MAE
from tinylatent.models.mae import (_gather_tokens, patchify, random_masking,
                                   sincos_position_embedding, unpatchify)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("TINYLATENT_OFFLINE", "1")


def tiny(**o):
    tl.manual_seed(0)
    return MAE(patch_size=4, hidden_features=16, num_layers=2, num_heads=2,
               decoder_features=8, decoder_layers=1, decoder_heads=2, **o)


def test_patchify_matches_the_definition_and_unpatchify_inverts_it():
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 8, 12)).astype(np.float32)
    p = patchify(tl.tensor(x), 4).numpy()
    assert p.shape == (2, 2 * 3, 4 * 4 * 3)
    for i in range(2):
        for j in range(3):   # patch (i, j) is token i * 3 + j, values in (row, col, channel)
            np.testing.assert_array_equal(p[:, i * 3 + j],
                                          x[:, :, 4 * i:4 * i + 4, 4 * j:4 * j + 4]
                                          .transpose(0, 2, 3, 1).reshape(2, -1))
    back = unpatchify(tl.tensor(p), 4, 3, 8, 12).numpy()
    np.testing.assert_array_equal(back, x)
    with pytest.raises(ValueError, match="patchify: image 8x12 is not divisible into 5x5"):
        patchify(tl.tensor(x), 5)


@pytest.mark.parametrize("ratio", [0.5, 0.75, 0.9])
def test_random_masking_keeps_exactly_the_requested_count_and_unshuffle_restores(ratio):
    b, length = 7, 49
    ids_keep, mask, ids_restore = random_masking(b, length, ratio, generator=tl.Generator(3))
    keep = int(round(length * (1 - ratio)))
    ids_keep, mask, ids_restore = ids_keep.numpy(), mask.numpy(), ids_restore.numpy()
    assert ids_keep.shape == (b, keep)
    np.testing.assert_array_equal(mask.sum(1), np.full(b, length - keep))   # per sample
    for row in range(b):
        assert len(set(ids_keep[row])) == keep                    # without replacement
        np.testing.assert_array_equal(np.flatnonzero(mask[row] == 0), np.sort(ids_keep[row]))
    # unshuffle: [kept tokens, then masked tokens] gathered by ids_restore = patch order
    tokens = tl.tensor(np.arange(b * length, dtype=np.float32).reshape(b, length, 1))
    shuffled = _gather_tokens(tokens, tl.tensor(np.argsort(ids_restore, 1)))
    np.testing.assert_array_equal(shuffled.numpy()[:, :keep, 0],
                                  tokens.numpy()[np.arange(b)[:, None], ids_keep, 0])
    restored = _gather_tokens(shuffled, tl.tensor(ids_restore))
    np.testing.assert_array_equal(restored.numpy(), tokens.numpy())
    # different samples get different masks
    assert len({tuple(r) for r in mask}) > 1
    with pytest.raises(ValueError, match="mask_ratio must lie in"):
        random_masking(2, 4, 1.0)


def test_encoder_never_sees_masked_patches():
    """Changing the masked pixels changes neither the encoder output nor the decoder's
    prediction, and the gradient of the loss wrt the masked pixels is exactly zero except
    through the target (here: only the encoder path is differentiated)."""
    model = tiny()
    model.eval()
    rng = np.random.default_rng(1)
    x = rng.random((4, 1, 28, 28)).astype(np.float32)
    ids_keep, mask, ids_restore = random_masking(4, 49, 0.75, generator=tl.Generator(0))
    mask_img = unpatchify(mask.unsqueeze(-1).expand(4, 49, 16), 4, 1, 28, 28).numpy()
    x2 = np.where(mask_img == 1, rng.random(x.shape).astype(np.float32), x)
    assert np.abs(x2 - x).max() > 0.1
    with tl.no_grad():
        a = model.forward_encoder(tl.tensor(x), ids_keep)
        b = model.forward_encoder(tl.tensor(x2), ids_keep)
    assert a.shape == (4, 12, 16)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    xt = tl.tensor(x, requires_grad=True)
    pred = model.forward_decoder(model.forward_encoder(xt, ids_keep), ids_restore)
    (pred ** 2).sum().backward()
    g = xt.grad.numpy()
    assert np.all(g[mask_img == 1] == 0) and np.abs(g[mask_img == 0]).sum() > 0


def test_loss_counts_only_masked_patches():
    model = tiny()
    x = tl.tensor(np.random.default_rng(2).random((3, 1, 28, 28)).astype(np.float32))
    target = model.target(x)
    pred = target.detach().clone()
    mask = tl.tensor((np.random.default_rng(0).random((3, 49)) < 0.5).astype(np.float32))
    arr = pred.numpy().copy()
    arr[mask.numpy() == 0] += 5.0             # errors on visible patches only: loss 0
    assert model.masked_mse(tl.tensor(arr), target, mask).item() == 0
    arr[mask.numpy() == 1] += 1.0             # unit error on every masked pixel: loss 1
    np.testing.assert_allclose(model.masked_mse(tl.tensor(arr), target, mask).item(), 1.0,
                               rtol=1e-6)
    t = target.numpy()                         # normalised per patch: mean 0, var ~1
    np.testing.assert_allclose(t.mean(-1), 0, atol=1e-5)
    var = t.var(-1)
    assert np.all((np.abs(var - 1) < 1e-3) | (var < 1e-6))


def test_position_embedding_is_distinct_per_patch():
    pe = sincos_position_embedding(16, 7)
    assert pe.shape == (49, 16)
    d = ((pe[:, None] - pe[None]) ** 2).sum(-1)
    assert np.all(d[~np.eye(49, dtype=bool)] > 1e-3)


def test_bad_input_names_the_model_and_shapes():
    with pytest.raises(ValueError, match=r"MAE: expected images \(B, 1, 28, 28\), got"):
        tiny().loss(tl.zeros(2, 1, 27, 27))
    with pytest.raises(ValueError, match="image_size 28 must be a multiple of patch_size 5"):
        MAE(patch_size=5)


@pytest.mark.slow
def test_mae_trains_below_the_mean_patch_baseline():
    """A short training (4 epochs) on 2,000 embedded MNIST digits: the masked-patch MSE (normalised
    pixels) on held-out test digits falls below predicting each masked patch's own mean
    (= 0 in normalised units; a baseline that even knows the true patch mean)."""
    from tinylatent.data import DataLoader, TensorDataset
    from tinylatent.models.mae import masked_patch_mse
    x, _ = tl.data.load_mnist("mnist", "train")
    xt, _ = tl.data.load_mnist("mnist", "test")
    x = tl.tensor(x[:2000, None] / 255.0, dtype=tl.float32)
    xt = tl.tensor(xt[:500, None] / 255.0, dtype=tl.float32)
    tl.manual_seed(0)
    model = MAE(patch_size=7, hidden_features=32, num_layers=2, num_heads=2,
                decoder_features=16, decoder_layers=1, decoder_heads=2)
    opt = tl.optim.Adam(model.parameters(), lr=2e-3)
    for xb, in [b for epoch in range(4) for b in DataLoader(
            TensorDataset(x), 64, shuffle=True, generator=tl.Generator(epoch))]:
        loss, _ = model.loss(xb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    mse, baseline = masked_patch_mse(model, xt, generator=tl.Generator(0))
    print(f"masked-patch MSE {mse:.4f} vs mean-patch baseline {baseline:.4f}")
    assert mse < 0.95 * baseline, (mse, baseline)   # measured 0.522 vs 0.583


@pytest.mark.long
def test_mae_figure_example_defaults(tmp_path):
    """The README figure: examples/mae_mnist.py defaults (10 epochs, embedded MNIST, 75%
    masked). Measured: masked-patch MSE 0.469 vs mean-patch baseline 0.589; linear probe on
    the frozen encoder 0.680 vs the same ViT at random init 0.620 (raw pixels 0.885)."""
    import importlib.util
    from pathlib import Path
    script = Path(__file__).resolve().parent.parent / "examples" / "mae_mnist.py"
    spec = importlib.util.spec_from_file_location("mae_mnist_example", script)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    result = example.main(["--out", str(tmp_path)])
    print(result)
    assert result["test_masked_mse"] < 0.9 * result["mean_patch_baseline"]
    assert result["probe"]["trained"] > result["probe"]["random init"]


@pytest.mark.long
def test_mae_figure_on_fashion_mnist(tmp_path):
    """README figure on full Fashion-MNIST (10,000 training images, 4,000 labelled for the
    probe, 10,000 test). Measured: masked-patch MSE 0.484 vs mean-patch baseline 0.812;
    probe 0.763 vs random init 0.709 (raw pixels 0.795: the small ViT stays below them)."""
    try:
        tl.data.load_mnist("fashion-mnist", "test")
    except FileNotFoundError as e:
        pytest.skip(f"full Fashion-MNIST not found (offline, no cache): {e}")
    import importlib.util
    from pathlib import Path
    script = Path(__file__).resolve().parent.parent / "examples" / "mae_mnist.py"
    spec = importlib.util.spec_from_file_location("mae_mnist_example", script)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    result = example.main(["--dataset", "fashion-mnist", "--out", str(tmp_path)])
    print(result)
    assert result["test_masked_mse"] < 0.7 * result["mean_patch_baseline"]
    assert result["probe"]["trained"] > result["probe"]["random init"]
