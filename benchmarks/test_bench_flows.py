"""RealNVP and Glow on dequantised MNIST (the examples/flows_mnist.py recipes): tinylatent next
to a PyTorch twin written from the papers, with tinylatent's random initial values copied in,
its own ActNorm initialisation on the same batch, and the same dequantised minibatches (see
benchmarks/flow_reference.py).

  * lockstep: no training noise beyond the shared dequantisation, so the two trainings agree
    to float32 rounding step by step, and so does the test bits/dim;
  * quality (full mode): test bits/dim after 300 steps, mean over 3 seeds, within 0.01;
  * time per training step, tinylatent / PyTorch, reported, never asserted.
Quick: 2 steps a level of 16 channels, 5 steps; full: the example's default sizes.
"""
from __future__ import annotations

import numpy as np
import pytest

import tinylatent as tl
from benchmarks.harness import torch

TOLERANCE_BPD = 0.01
MODELS = ["realnvp", "glow"]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("TINYLATENT_OFFLINE", "1")   # the embedded subset, never the network


@pytest.mark.parametrize("model", MODELS)
def test_flow_twin_lockstep(bench, model):
    if torch is None:
        pytest.skip("PyTorch is not installed")
    from benchmarks.flow_reference import SideBySide
    size = bench.pick(quick=dict(hidden=16, steps=2), full={})
    s = SideBySide(model, seed=0, n_test=100, **size)
    bpd0 = s.test_bpd()
    assert abs(bpd0[0] - bpd0[1]) < 1e-5, bpd0            # ActNorm init and layers agree
    for i in range(bench.pick(quick=5, full=30)):
        tl_loss, pt_loss, _, _ = s.step(s.batch())
        # float32 rounding only (measured |diff| <= 5e-4 nats of ~2600 over 5 steps)
        assert abs(tl_loss - pt_loss) < 1e-5 * abs(pt_loss) + 1e-3, (i, tl_loss, pt_loss)
    bpd = s.test_bpd()
    print(f"{model} lockstep: test bits/dim {bpd0[0]:.5f}/{bpd0[1]:.5f} at init, "
          f"{bpd[0]:.5f}/{bpd[1]:.5f} after the steps (tl/torch)")
    assert abs(bpd[0] - bpd[1]) < 1e-4, bpd


@pytest.mark.parametrize("model", MODELS)
def test_flow_quality_and_step_time(bench, model):
    if torch is None:
        pytest.skip("PyTorch is not installed")
    from benchmarks.flow_reference import DEFAULTS, SideBySide
    n_steps, seeds = bench.pick(quick=(0, ()), full=(300, (0, 1, 2)))
    notes, check = "", None
    if n_steps:
        finals = []
        for seed in seeds:
            s = SideBySide(model, seed=seed)
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
    size = bench.pick(quick=dict(hidden=16, steps=2), full=DEFAULTS[model])
    timing = SideBySide(model, seed=1, n_test=10, **size)
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
    bench.compare(f"{model} train step (2 levels x {size['steps']}, {size['hidden']} ch, "
                  "batch 64)", tl_step, pt_step, check=check, group="models", notes=notes)
