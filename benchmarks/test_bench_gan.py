"""DCGAN and WGAN-GP training steps (tinylatent/models/dcgan.py): tinylatent next to PyTorch
twins with the same layers, initial weights, batches and noise (benchmarks/gan_reference.py).

  * lockstep: one training_step on each side gives the same losses (float32 rounding) and,
    after 12 steps, the same weights (relative norm of the difference < 1e-3; 2e-3 for
    DCGAN, see the test): the proof that the recipes are the same, including WGAN-GP's
    double backward;
  * time of one training step (DCGAN: a discriminator and a generator update; WGAN-GP: a
    critic update with the gradient penalty and a generator update), batch 64 of 28x28,
    hidden_channels 64, tinylatent / PyTorch (goal <= 1.2), reported, never asserted.
"""
from __future__ import annotations

import numpy as np
import pytest

import tinylatent as tl
from benchmarks.harness import torch


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("TINYLATENT_OFFLINE", "1")   # the embedded subset, never the network


def _images(n):
    from tinylatent.data import MNIST
    return MNIST("train").tensors[0].numpy()[:n]       # (n, 1, 28, 28) in [0, 1]


@pytest.mark.parametrize("kind", ["dcgan", "wgangp"])
def test_gan_lockstep_same_noise_same_result(kind):
    if torch is None:
        pytest.skip("PyTorch is not installed")
    from benchmarks.gan_reference import SideBySide
    s = SideBySide(kind, seed=1, hidden_channels=16)
    x = _images(12 * 32)
    for i in range(12):
        (d, g), (pd, pg) = s.step(x[i * 32:(i + 1) * 32])
        # first steps: float32 rounding; then the GAN's own dynamics amplify it, DCGAN's
        # about 10x a step (relative, on an AVX2-only Zen 3: 6e-8, 1.6e-6, 1.6e-5 at steps
        # 0-2, up to 1.04e-3 for G's loss by step 8; WGAN-GP's stays below 2e-6). A wrong
        # gradient shows at steps 0-1, where the bound is tight.
        tol = 1e-5 if i < 2 else 5e-3
        assert abs(d - pd) <= tol * abs(pd), (kind, i, d, pd)
        assert (g is None) == (pg is None), (kind, i)
        if g is not None:
            assert abs(g - pg) <= tol * max(abs(pg), 1e-2), (kind, i, g, pg)
    # DCGAN's default D has minibatch discrimination, whose T gets gradients down to 1e-11
    # (exp(-distance) of far pairs): Adam turns their rounding into lr-sized steps, as it
    # does for BatchNorm shifts (weight_difference); measured 8e-5 after one step, 1.03e-3
    # after 12 (4.6e-4 without T, 1.3e-7 without T and the minibatch std; 1.74e-3 on the
    # AVX2-only Zen 3)
    assert s.weight_difference() < (5e-3 if kind == "dcgan" else 1e-3), \
        (kind, s.weight_difference())


@pytest.mark.parametrize("kind", ["dcgan", "wgangp"])
def test_gan_training_step_time(bench, kind):
    from benchmarks.gan_reference import SideBySide
    batch = 64
    x = _images(batch)
    check = None
    if torch is not None:
        s = SideBySide(kind, seed=2, hidden_channels=64)

        def check():
            (d, g), (pd, pg) = s.step(x)     # one untimed lockstep step at the timed size
            assert abs(d - pd) <= 1e-4 * abs(pd) and abs(g - pg) <= 1e-4 * abs(pg)
        if kind == "wgangp":
            s.n = s.model.config.n_critic - 1      # a step with the generator update
        xt, xp = tl.tensor(x), torch.from_numpy(x)
        z = lambda: torch.randn(batch, s.model.config.latent_features)   # noqa: E731
        eps = lambda: torch.rand(batch) if kind == "wgangp" else None    # noqa: E731
        step = s.model.config.n_critic - 1         # every timed call updates both players
        tl_fn = lambda: s.tl_step(xt, step)                              # noqa: E731
        torch_fn = lambda: s.twin.step(xp, z(), z(), eps())              # noqa: E731
    else:
        from tinylatent.models import DCGAN, WGANGP
        tl.manual_seed(2)
        model = (DCGAN if kind == "dcgan" else WGANGP)(hidden_channels=64)
        opts, xt = model.optimizers(), tl.tensor(x)
        tl_fn = lambda: model.training_step(xt, opts, model.config.n_critic - 1)  # noqa
        torch_fn = None
    what = ("D + G update" if kind == "dcgan" else "critic update with gradient penalty + G "
            "update")
    bench.compare(f"{kind} training step ({what}, batch {batch}, 28x28, C=64)", tl_fn,
                  torch_fn, check=check, group="models", goal=1.2)
