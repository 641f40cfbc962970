"""MADE (the examples/autoregressive_mnist.py recipe): tinylatent next to a PyTorch twin with
the same masks (computed independently from the same seeds), initial weights and binarised
minibatches (see benchmarks/made_reference.py).

  * lockstep: MADE's training has no noise of its own, so with identical weights and batches
    the two trainings must agree to float32 rounding, step by step, and so must the test
    NLL of the 8-mask ensemble: the proof that the recipes are the same;
  * quality: the test NLL after the same epochs (full mode: 3 seeds), within 0.5 nats;
  * time per training step, tinylatent / PyTorch, reported, never asserted.
Quick: 20 steps on the embedded MNIST subset; full: 10 epochs (500 steps) x 3 seeds.
Full Fashion-MNIST is not used here (its files were not available where this was written).
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import tinylatent as tl
from benchmarks.harness import torch

TOLERANCE_NATS = 0.5


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("TINYLATENT_OFFLINE", "1")   # the embedded subset, never the network


def test_made_twin_masks_and_lockstep_losses(bench):
    if torch is None:
        pytest.skip("PyTorch is not installed")
    from benchmarks.made_reference import SideBySide
    s = SideBySide(seed=0, n_test=bench.pick(quick=200, full=None))
    assert s.masks_equal()
    tl_nll0, pt_nll0 = s.test_nll()
    assert abs(tl_nll0 - pt_nll0) < 1e-3 * abs(pt_nll0), (tl_nll0, pt_nll0)
    # as many epochs as the steps need: full mode's 50 outlast one epoch of the embedded
    # 4,000 images (40 batches), where next() on one epoch raised StopIteration
    batches = itertools.chain.from_iterable(s.batches() for _ in itertools.count())
    for i in range(bench.pick(quick=20, full=50)):
        tl_loss, pt_loss, _, _ = s.step(next(batches))
        # float32 rounding only (measured |diff| / loss < 1e-5 over 50 steps)
        assert abs(tl_loss - pt_loss) < 1e-4 * abs(pt_loss), (i, tl_loss, pt_loss)
    tl_nll, pt_nll = s.test_nll()
    print(f"MADE lockstep: test NLL {tl_nll0:.3f}/{pt_nll0:.3f} at init, "
          f"{tl_nll:.3f}/{pt_nll:.3f} after the steps (tl/torch)")
    assert abs(tl_nll - pt_nll) < 0.05, (tl_nll, pt_nll)


def test_made_mnist_quality_and_step_time(bench):
    if torch is None:
        pytest.skip("PyTorch is not installed")
    from benchmarks.made_reference import SideBySide
    epochs, seeds = bench.pick(quick=(0, (0,)), full=(10, (0, 1, 2)))
    notes, check = "", None
    if epochs:
        finals = []
        for seed in seeds:
            s = SideBySide(seed=seed)
            for _ in range(epochs):
                for x in s.batches():
                    s.step(x)
            finals.append(s.test_nll())
        tl_final, pt_final = np.array(finals).T
        diff = float(np.mean(tl_final - pt_final))
        notes = (f"test NLL after {epochs} ep (embedded MNIST, seeds {seeds}): "
                 f"tl {tl_final.mean():.2f} vs torch {pt_final.mean():.2f} ({diff:+.2f})")
        print(notes)

        def check():
            assert abs(diff) <= TOLERANCE_NATS, notes
    timing = SideBySide(seed=1, n_test=100)
    x = next(timing.batches())
    xt, xp = tl.tensor(x), torch.from_numpy(x)

    def tl_step():
        loss, _ = timing.tl_model.loss(xt)
        timing.tl_opt.zero_grad()
        loss.backward()
        timing.tl_opt.step()

    def pt_step():
        loss = timing.pt_model.train_loss(xp)
        timing.pt_opt.zero_grad()
        loss.backward()
        timing.pt_opt.step()
    bench.compare("made train step (784-500-784, 8 masks, batch 100)", tl_step, pt_step,
                  check=check, group="models", notes=notes)
