"""MAF on dequantised MNIST (the examples/flows_mnist.py --model maf recipe): tinylatent next
to a PyTorch twin with its own masks and ActNorm initialisation, the same MADE weights and
the same dequantised minibatches (see benchmarks/maf_reference.py).

  * lockstep: no training noise beyond the shared dequantisation, so the two trainings must
    agree to float32 rounding step by step, and so must the test bits/dim;
  * quality (full mode): test bits/dim after 500 steps, mean over 3 seeds, within 0.01;
  * time per training step, tinylatent / PyTorch, reported, never asserted.
Quick: a 2-layer, 64-unit MAF for 10 steps; full: the example's 5 x 512 MAF.
Only the embedded MNIST subset is used (full Fashion-MNIST was not available here).
"""
from __future__ import annotations

import numpy as np
import pytest

import tinylatent as tl
from benchmarks.harness import torch

TOLERANCE_BPD = 0.01


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("TINYLATENT_OFFLINE", "1")   # the embedded subset, never the network


def test_maf_twin_lockstep(bench):
    if torch is None:
        pytest.skip("PyTorch is not installed")
    from benchmarks.maf_reference import SideBySide
    hidden, steps = bench.pick(quick=(64, 2), full=(512, 5))
    s = SideBySide(seed=0, hidden=hidden, steps=steps, n_test=200)
    assert s.masks_equal()
    bpd0 = s.test_bpd()
    assert abs(bpd0[0] - bpd0[1]) < 1e-5, bpd0            # ActNorm init and MADE agree
    for i in range(bench.pick(quick=10, full=30)):
        tl_loss, pt_loss, _, _ = s.step(s.batch())
        # float32 rounding only (measured |diff| < 3e-4 nats of ~3000 over 10 steps)
        assert abs(tl_loss - pt_loss) < 1e-5 * abs(pt_loss) + 1e-3, (i, tl_loss, pt_loss)
    bpd = s.test_bpd()
    print(f"MAF lockstep ({steps} x {hidden}): test bits/dim {bpd0[0]:.5f}/{bpd0[1]:.5f} at "
          f"init, {bpd[0]:.5f}/{bpd[1]:.5f} after the steps (tl/torch)")
    assert abs(bpd[0] - bpd[1]) < 1e-4, bpd


def test_maf_mnist_quality_and_step_time(bench):
    if torch is None:
        pytest.skip("PyTorch is not installed")
    from benchmarks.maf_reference import SideBySide
    n_steps, seeds = bench.pick(quick=(0, ()), full=(500, (0, 1, 2)))
    notes, check = "", None
    if n_steps:
        finals = []
        for seed in seeds:
            s = SideBySide(seed=seed)
            for _ in range(n_steps):
                s.step(s.batch())
            finals.append(s.test_bpd())
        tl_final, pt_final = np.array(finals).T
        diff = float(np.mean(tl_final - pt_final))
        notes = (f"test bits/dim after {n_steps} steps (embedded MNIST, seeds {seeds}): "
                 f"tl {tl_final.mean():.4f} vs torch {pt_final.mean():.4f} ({diff:+.4f})")
        print(notes)

        def check():
            assert abs(diff) <= TOLERANCE_BPD, notes
    hidden, steps = bench.pick(quick=(64, 2), full=(512, 5))
    timing = SideBySide(seed=1, hidden=hidden, steps=steps, n_test=10)
    x = timing.batch()
    xt, xp = tl.tensor(x), torch.from_numpy(x)

    def tl_step():
        loss, _ = timing.tl_flow.loss(xt)
        timing.tl_opt.zero_grad()
        loss.backward()
        timing.tl_opt.step()

    def pt_step():
        loss = -timing.pt_flow.log_prob(xp).mean()
        timing.pt_opt.zero_grad()
        loss.backward()
        timing.pt_opt.step()
    bench.compare(f"maf train step ({steps} x MADE 784-{hidden}, batch 64)", tl_step, pt_step,
                  check=check, group="models", notes=notes)
