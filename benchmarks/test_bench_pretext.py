"""The rotation-prediction, masked-autoencoder and colorization training steps (issue 19) next
to PyTorch twins (benchmarks/pretext_reference.py): same weights, same batch, for the MAE the
same masking, for Colorization the same L and targets. The check comes first: loss and the
gradient of every parameter agree to float32 rounding (float64 for the BN nets); then one
step (zero grads, forward, backward) of each library is timed, never asserted. quick: batch
16; full: batch 64 (RotationNet 32-64-128 on 28x28, x4 rotations; MAE the mae.py defaults,
7x7 patches, 75% masked; Colorization 32-64 on Colored MNIST-like images, rebalanced, Q = 261
bins per pixel)."""
from __future__ import annotations

import numpy as np
import pytest

import tinylatent as tl
from benchmarks.harness import assert_close, assert_close_norm, to_numpy, torch


def _agree(a, b, name: str) -> None:
    ref = to_numpy(b)
    assert_close_norm(a, b, rel=1e-4, name=name)
    assert_close(a, b, rtol=1e-3, atol=1e-4 * max(float(np.max(np.abs(ref))), 1e-6), name=name)


def _images(n: int) -> np.ndarray:
    return np.random.default_rng(0).random((n, 1, 28, 28)).astype(np.float32)


def _rotation_pair(batch: int, float64: bool = False):
    from tinylatent.models import RotationNet
    tl.manual_seed(0)
    m = RotationNet(hidden_channels=(32, 64, 128))
    x = _images(batch)
    if float64:
        m, x = m.to(tl.float64), x.astype(np.float64)
    tl_step = _step(m, lambda: m.loss(tl.tensor(x))[0])
    if torch is None:
        return m, tl_step, None, None
    from benchmarks.pretext_reference import TorchRotationNet, copy_weights
    pt = TorchRotationNet(hidden_channels=(32, 64, 128))
    pt = pt.double() if float64 else pt
    copy_weights(m, pt)
    xt = torch.from_numpy(x)
    return m, tl_step, pt, _step(pt, lambda: pt.loss(xt))


def _mae_pair(batch: int, float64: bool = False):
    from tinylatent.models import MAE
    from tinylatent.models.mae import random_masking
    tl.manual_seed(0)
    m = MAE()
    x = _images(batch)
    ids_keep, mask, ids_restore = random_masking(batch, m.num_patches, m.config.mask_ratio,
                                                 generator=tl.Generator(1))

    def tl_loss():     # the model's own loss, with the masking fixed to the one above
        xt = tl.tensor(x)
        pred = m.forward_decoder(m.forward_encoder(xt, ids_keep), ids_restore)
        return m.masked_mse(pred, m.target(xt), mask)
    tl_step = _step(m, tl_loss)
    if torch is None:
        return m, tl_step, None, None
    from benchmarks.pretext_reference import TorchMAE, copy_weights
    pt = TorchMAE(m.config)
    copy_weights(m, pt)
    args = [torch.from_numpy(a) for a in (x, ids_keep.numpy(), mask.numpy(),
                                          ids_restore.numpy())]
    return m, tl_step, pt, _step(pt, lambda: pt.loss(*args))


def _colorization_pair(batch: int, float64: bool = False):
    from tinylatent.data.colored_mnist import colorize_digits
    from tinylatent.models import Colorization
    tl.manual_seed(0)
    m = Colorization(hidden_channels=(32, 64))
    x = colorize_digits(_images(batch)[:, 0], generator=0)[0]
    if float64:
        m, x = m.to(tl.float64), x.astype(np.float64)
    m.fit_rebalancing(x)
    xt = tl.tensor(x)
    light, targets = m.lightness(xt), m.targets(xt)      # data preparation, shared

    def tl_loss():
        return m.rebalanced_nll(m(light), targets)[0]
    tl_step = _step(m, tl_loss)
    if torch is None:
        return m, tl_step, None, None
    from benchmarks.pretext_reference import TorchColorization, copy_weights
    pt = TorchColorization((32, 64), len(m.centres))
    pt = pt.double() if float64 else pt
    copy_weights(m, pt)
    args = [torch.from_numpy(np.ascontiguousarray(t.numpy())) for t in (light, *targets)]
    return m, tl_step, pt, _step(pt, lambda: pt.loss(*args))


def _step(model, loss_fn):
    def step():
        for p in model.parameters():
            p.grad = None
        loss = loss_fn()
        loss.backward()
        return loss
    return step


PAIRS = {"rotation": ("RotationNet 32-64-128 step, 4 rotations of B={b} 28x28", _rotation_pair),
         "mae": ("MAE (ViT 64x3, decoder 32x2, 7x7 patches, 75% masked) step B={b}", _mae_pair),
         "colorization": ("Colorization 32-64 step, 261 ab bins per pixel, B={b} 28x28",
                          _colorization_pair)}


@pytest.mark.parametrize("key", list(PAIRS))
def test_pretext_step(bench, key):
    title, make = PAIRS[key]
    b = bench.pick(quick=16, full=64)
    m, tl_step, pt, pt_step = make(b)

    def check():
        if key in ("rotation", "colorization"):
            return check_float64()
        a, ta, p, tb = make(b)
        _agree(ta().detach().numpy(), tb().detach(), name="loss")
        grads = dict(p.named_parameters())
        for name, param in a.named_parameters():
            _agree(param.grad.numpy(), grads[name].grad, name=f"grad {name}")

    def check_float64():
        """Three batch norms in a row make the early gradients sums that nearly cancel
        (a BN's input gradient has zero mean per channel), so float32 rounding alone gives
        relative differences ~1e-3 there (measured); in float64 every gradient agrees to
        ~1e-14 (Colorization's two blocks alike). A conv bias right before a BN has the
        exact gradient 0 (BN subtracts it out): both sides must give rounding noise only."""
        a, ta, p, tb = make(b, float64=True)
        np.testing.assert_allclose(ta().item(), tb().item(), rtol=1e-12)
        grads = dict(p.named_parameters())
        for name, param in a.named_parameters():
            x, y = param.grad.numpy(), grads[name].grad.numpy()
            if name.startswith("blocks.") and name.endswith(".0.bias"):
                assert np.abs(x).max() < 1e-10 and np.abs(y).max() < 1e-10, name
            else:
                np.testing.assert_allclose(x, y, rtol=1e-8, atol=1e-12 * np.abs(y).max(),
                                           err_msg=name)

    bench.compare(title.format(b=b), tl_step, pt_step, check=check, group="models")
