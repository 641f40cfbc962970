"""CycleGAN (Zhu et al. 2017): the loss terms against hand formulas (LSGAN, cycle L1, identity
L1), the history pool of Shrivastava et al., gradient isolation between the players, the
PatchGAN's output grid; the MNIST -> bold MNIST figure under -m long."""
import numpy as np
import pytest

import tinylatent as tl
from tinylatent.models import CycleGAN
from tinylatent.models.cyclegan import (ImagePool, lsgan_discriminator_loss,
                                        lsgan_generator_loss)


def _tiny(**o):
    tl.manual_seed(0)
    return CycleGAN(image_size=8, hidden_channels=3, n_blocks=1, **o)


def _batch(seed=0, n=4):
    rng = np.random.default_rng(seed)
    return (tl.tensor(rng.random((n, 1, 8, 8)).astype(np.float32)),
            tl.tensor(rng.random((n, 1, 8, 8)).astype(np.float32)))


def _np(net, x):
    with tl.no_grad():
        return net(tl.tensor(np.asarray(x, np.float32))).numpy().astype(np.float64)


def test_lsgan_losses_are_the_least_squares_formulas():
    r, f = np.array([[0.3, 1.2], [-0.5, 2.0]]), np.array([[0.1, -0.4], [0.9, 0.0]])
    d = lsgan_discriminator_loss(tl.tensor(r), tl.tensor(f)).item()
    g = lsgan_generator_loss(tl.tensor(f)).item()
    np.testing.assert_allclose(d, 0.5 * (np.mean((r - 1) ** 2) + np.mean(f ** 2)), rtol=1e-6)
    np.testing.assert_allclose(g, np.mean((f - 1) ** 2), rtol=1e-6)


@pytest.mark.parametrize("identity_weight", [5.0, 0.0])
def test_losses_equal_hand_formulas(identity_weight):
    model = _tiny(identity_weight=identity_weight)
    x_a, x_b = _batch()
    a, b = x_a.numpy() * 2 - 1, x_b.numpy() * 2 - 1              # the model's [-1, 1]
    g, f = model.g_ab, model.g_ba
    fake_b, fake_a = _np(g, a), _np(f, b)
    gan = np.mean((_np(model.d_b, fake_b) - 1) ** 2) + np.mean((_np(model.d_a, fake_a) - 1) ** 2)
    cycle = np.mean(np.abs(_np(f, fake_b) - a)) + np.mean(np.abs(_np(g, fake_a) - b))
    identity = np.mean(np.abs(_np(g, b) - b)) + np.mean(np.abs(_np(f, a) - a))
    l_g = gan + 10.0 * cycle + identity_weight * identity
    l_d = (0.5 * (np.mean((_np(model.d_a, a) - 1) ** 2) + np.mean(_np(model.d_a, fake_a) ** 2))
           + 0.5 * (np.mean((_np(model.d_b, b) - 1) ** 2) + np.mean(_np(model.d_b, fake_b) ** 2)))
    loss, m = model.loss((x_a, x_b))
    np.testing.assert_allclose(m["g_gan"].item(), gan, rtol=1e-5)
    np.testing.assert_allclose(m["cycle_l1"].item(), cycle, rtol=1e-5)
    if identity_weight:
        np.testing.assert_allclose(m["identity_l1"].item(), identity, rtol=1e-5)
    else:
        assert "identity_l1" not in m
    np.testing.assert_allclose(m["g_loss"].item(), l_g, rtol=1e-5)
    np.testing.assert_allclose(m["d_loss"].item(), l_d, rtol=1e-5)
    np.testing.assert_allclose(loss.item(), l_g + l_d, rtol=1e-5)


def test_reconstruct_is_the_cycle_and_translations_have_domain_shapes():
    model = _tiny(out_channels=3, identity_weight=0.0)
    x_a = _batch()[0]
    fake_b = model.translate_ab(x_a)
    assert fake_b.shape == (4, 3, 8, 8) and not fake_b.requires_grad
    assert model.translate_ba(fake_b).shape == (4, 1, 8, 8)
    a = x_a.numpy() * 2 - 1
    expected = (_np(model.g_ba, _np(model.g_ab, a)) + 1) / 2
    np.testing.assert_allclose(model.reconstruct(x_a).numpy(), expected, atol=1e-5)


def test_bad_configs_and_batches_are_refused():
    with pytest.raises(ValueError, match="identity loss needs in_channels == out_channels"):
        CycleGAN(out_channels=3)
    with pytest.raises(ValueError, match="multiple of 4"):
        CycleGAN(image_size=10)
    model = _tiny()
    with pytest.raises(ValueError, match=r"tuple \(x_a, x_b\)"):
        model.loss(_batch()[0])
    with pytest.raises(ValueError, match=r"domain B images \(B, 1, 8, 8\)"):
        model.loss((_batch()[0], tl.tensor(np.zeros((4, 2, 8, 8), np.float32))))


@pytest.mark.parametrize("size", [8, 28])
def test_patchgan_gives_one_score_per_patch(size):
    model = CycleGAN(image_size=size, hidden_channels=2, n_blocks=1)
    x = tl.tensor(np.zeros((3, 1, size, size), np.float32))
    assert model.d_a(x).shape == (3, 1, size // 4, size // 4)
    assert model.d_b(x).shape == (3, 1, size // 4, size // 4)
    assert model.g_ab(x).shape == (3, 1, size, size)


def _grads(module):
    return [p.grad for p in module.parameters()]


def _nonzero(grads):
    return all(g is not None and np.any(g.numpy() != 0) for g in grads)


def test_generator_loss_gives_discriminators_no_gradient_and_vice_versa():
    model = _tiny()
    a, b = model._batch(_batch())
    g_loss, _, fake_a, fake_b = model.generator_loss(a, b)
    g_loss.backward()
    assert _nonzero(_grads(model.g_ab)) and _nonzero(_grads(model.g_ba))
    assert all(g is None for g in _grads(model.d_a) + _grads(model.d_b))
    assert all(p.requires_grad for p in model.d_a.parameters())      # frozen() restored
    model.zero_grad()
    for p in model.parameters():
        p.grad = None
    d_loss, _ = model.discriminator_loss(a, b, fake_a, fake_b)
    d_loss.backward()
    assert _nonzero(_grads(model.d_a)) and _nonzero(_grads(model.d_b))
    assert all(g is None for g in _grads(model.g_ab) + _grads(model.g_ba))


def test_training_step_updates_each_player_with_its_optimizer():
    model = _tiny()
    opts = model.optimizers()
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    metrics = model.training_step(_batch(), opts, 0)
    after = model.state_dict()
    moved = {k.split(".")[0] for k in before if not np.array_equal(before[k], after[k].numpy())}
    assert {"g_ab", "g_ba", "d_a", "d_b", "pool_a", "pool_b"} <= moved
    assert int(model.pool_a.count.numpy()) == 4
    assert {"loss", "g_loss", "d_loss", "cycle_l1"} <= set(metrics)
    with pytest.raises(KeyError, match="optimizers lack"):
        model.training_step(_batch(), {"generator": opts["generator"]}, 1)


def _distinct(batch, n=10):
    """n images (1, 2, 2) each filled with one distinct value: batch * 100 + i."""
    v = batch * 100.0 + np.arange(n, dtype=np.float32)
    return np.broadcast_to(v[:, None, None, None], (n, 1, 2, 2)).copy()


def _reference_pool(store, count, new, coins, slots):
    """The rule written out per image: fill, else with probability 1/2 return a stored image
    and keep the new one in its slot."""
    out = new.copy()
    for i in range(len(new)):
        if count < len(store):
            store[count] = new[i]
            count += 1
        elif coins[i] < 0.5:
            out[i], store[slots[i]] = store[slots[i]].copy(), new[i]
    return out, count


def test_history_pool_fills_then_swaps_half():
    pool = ImagePool(50, (1, 2, 2))
    g, g_ref = tl.Generator(3), tl.Generator(3)        # the same coins for the reference
    store, count = np.zeros((50, 1, 2, 2), np.float32), 0
    stored = 0
    for t in range(205):
        new = _distinct(t)
        out = pool(tl.tensor(new), generator=g).numpy()
        coins = tl.rand(10, generator=g_ref).numpy()
        slots = tl.randint(0, 50, (10,), generator=g_ref).numpy()
        expected, count = _reference_pool(store, count, new, coins, slots)
        np.testing.assert_array_equal(out, expected)
        np.testing.assert_array_equal(pool.images.numpy(), store)
        assert int(pool.count.numpy()) == count == min(50, 10 * (t + 1))
        if t < 5:                            # filling: every fake is stored and returned
            np.testing.assert_array_equal(out, new)
        else:
            stored += (out[:, 0, 0, 0] != new[:, 0, 0, 0]).sum()
    # full: about half of what D sees comes from the history
    assert 0.45 < stored / 2000 < 0.55, stored / 2000


def test_history_pool_is_seeded_and_checks_shapes():
    outs = []
    for _ in range(2):
        pool = ImagePool(5, (1, 2, 2))
        g = tl.Generator(7)
        outs.append([pool(tl.tensor(_distinct(t, 4)), generator=g).numpy() for t in range(6)])
    for x, y in zip(*outs):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match=r"ImagePool: expected images"):
        ImagePool(5, (1, 2, 2))(tl.tensor(np.zeros((3, 1, 3, 3), np.float32)))
    # size 0: no history, the fakes pass through
    x = _distinct(0, 3)
    np.testing.assert_array_equal(ImagePool(0, (1, 2, 2))(tl.tensor(x)).numpy(), x)


@pytest.mark.long
def test_cyclegan_mnist_translations_keep_the_digit(tmp_path):
    """README figure: MNIST -> bold MNIST (unpaired halves of the embedded 4,000), 10 epochs:
    a classifier trained on bold digits recognises the translated test digits as their source
    label (goal >= 90%, and better than on the untranslated digits), cycle L1 < 0.05."""
    from example_runner import load_example
    history = load_example("cyclegan_mnist").main(["--out", str(tmp_path), "--epochs", "10"])
    h = history[-1]
    assert h["acc_ab"] > h["acc_a_raw"], h
    assert h["acc_ab"] >= 0.90 and h["test_cycle_l1"] < 0.05, h
