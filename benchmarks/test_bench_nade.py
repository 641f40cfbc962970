"""NADE (the examples/autoregressive_mnist.py recipe): tinylatent next to a PyTorch twin with
the same initial weights and binarised minibatches (see benchmarks/nade_reference.py).

  * lockstep: NADE's training has no noise of its own, so with identical weights and batches
    the two trainings agree to float32 rounding, step by step, and so does the test NLL;
  * quality (full mode): the test NLL after the same epochs over 3 seeds, within 0.5 nats;
  * time per training step, tinylatent / PyTorch, reported, never asserted.
Quick: 4 steps of 20 images on the embedded MNIST subset; full: 2 epochs x 3 seeds.
"""
from __future__ import annotations

import numpy as np
import pytest

import tinylatent as tl
from benchmarks.harness import torch

TOLERANCE_NATS = 0.5


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("TINYLATENT_OFFLINE", "1")   # the embedded subset, never the network


def test_nade_twin_lockstep_losses(bench):
    if torch is None:
        pytest.skip("PyTorch is not installed")
    from benchmarks.nade_reference import SideBySide
    s = SideBySide(seed=0, batch_size=bench.pick(quick=20, full=100),
                   n_test=bench.pick(quick=50, full=None))
    tl_nll0, pt_nll0 = s.test_nll()
    assert abs(tl_nll0 - pt_nll0) < 1e-4 * abs(pt_nll0), (tl_nll0, pt_nll0)
    batches = s.batches()
    for i in range(bench.pick(quick=4, full=40)):
        tl_loss, pt_loss, _, _ = s.step(next(batches))
        # float32 rounding only (measured |diff| / loss < 2e-6 over 5 steps)
        assert abs(tl_loss - pt_loss) < 1e-4 * abs(pt_loss), (i, tl_loss, pt_loss)
    tl_nll, pt_nll = s.test_nll()
    print(f"NADE lockstep: test NLL {tl_nll0:.3f}/{pt_nll0:.3f} at init, "
          f"{tl_nll:.3f}/{pt_nll:.3f} after the steps (tl/torch)")
    assert abs(tl_nll - pt_nll) < 0.05, (tl_nll, pt_nll)


def test_nade_quality_and_step_time(bench):
    if torch is None:
        pytest.skip("PyTorch is not installed")
    from benchmarks.nade_reference import SideBySide
    epochs, seeds = bench.pick(quick=(0, (0,)), full=(2, (0, 1, 2)))
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
    batch = bench.pick(quick=20, full=100)
    timing = SideBySide(seed=1, n_test=20, batch_size=batch)
    x = next(timing.batches())
    xt, xp = tl.tensor(x), torch.from_numpy(x)

    def tl_step():
        loss, _ = timing.tl_model.loss(xt)
        timing.tl_opt.zero_grad()
        loss.backward()
        timing.tl_opt.step()

    def pt_step():
        loss = timing.pt_train_loss(xp)
        timing.pt_opt.zero_grad()
        loss.backward()
        timing.pt_opt.step()
    bench.compare(f"nade train step (784-500, O(DH) cumsum, batch {batch})", tl_step, pt_step,
                  check=check, group="models", notes=notes)
