"""Dual supervised learning (examples/dual_mnist.py's models): tinylatent next to a PyTorch twin
with the same masks (computed independently from the same seeds), initial weights, frozen
marginal MADE and labelled binarised minibatches (see benchmarks/dual_reference.py).

  * values first: the loss (eq. 4 of Xia et al. 2017) and every parameter's gradient of
    one step agree to float32 rounding;
  * lockstep: the training has no noise of its own, so the two trainings agree step by step
    (the frozen marginal included), and so does the class-conditional test NLL;
  * time per training step (classifier + conditional MADE + frozen marginal, forward and
    backward, Adam), tinylatent / PyTorch, reported, never asserted.
Quick: 10 lockstep steps, H = 500; full: 40 steps.
"""
from __future__ import annotations

import numpy as np
import pytest

import tinylatent as tl
from benchmarks.harness import assert_close, torch


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("TINYLATENT_OFFLINE", "1")   # the embedded subset, never the network


def _side_by_side(**kw):
    if torch is None:
        pytest.skip("PyTorch is not installed")
    from benchmarks.dual_reference import DualSideBySide
    return DualSideBySide(**kw)


def test_dual_twin_values_and_lockstep(bench):
    s = _side_by_side(seed=0, n_test=bench.pick(quick=200, full=None))
    made = s.tl_model.conditional.made
    for a, b in zip((made.hidden[0].mask, made.output.mask, made.direct.mask),
                    s.pt_model.conditional.made.masks[0]):
        np.testing.assert_array_equal(a.numpy(), b.numpy())   # twin_masks, computed apart
    tl_nll0, pt_nll0 = s.test_nll()
    assert abs(tl_nll0 - pt_nll0) < 1e-4 * abs(pt_nll0), (tl_nll0, pt_nll0)
    batches = s.batches()
    for i in range(bench.pick(quick=10, full=40)):
        tl_loss, pt_loss = s.step(next(batches))
        assert abs(tl_loss - pt_loss) < 1e-4 * abs(pt_loss), (i, tl_loss, pt_loss)
    tl_nll, pt_nll = s.test_nll()
    print(f"DSL lockstep: P(x|y) test NLL {tl_nll0:.3f}/{pt_nll0:.3f} at init, "
          f"{tl_nll:.3f}/{pt_nll:.3f} after the steps (tl/torch)")
    assert abs(tl_nll - pt_nll) < 0.05, (tl_nll, pt_nll)


def test_dual_train_step_time(bench):
    s = _side_by_side(seed=1, n_test=100, marginal_steps=5)
    x, y = next(s.batches())
    xt, yt = tl.tensor(x), tl.tensor(y)
    xp, yp = torch.from_numpy(x), torch.from_numpy(y)

    def tl_step():
        loss, _ = s.tl_model.loss((xt, yt))
        s.tl_opt.zero_grad()
        loss.backward()
        s.tl_opt.step()

    def pt_step():
        loss = s.pt_model.loss(xp, yp)
        s.pt_opt.zero_grad()
        loss.backward()
        s.pt_opt.step()

    def check():
        """The loss and every trainable parameter's gradient, from identical weights."""
        with torch.no_grad():
            state = s.tl_model.state_dict()
            for name, p in s.pt_model.named_parameters():
                p.copy_(torch.from_numpy(state[name].numpy()))
        s.tl_model.zero_grad()
        loss, _ = s.tl_model.loss((xt, yt))
        loss.backward()
        s.pt_model.zero_grad()
        pt_loss = s.pt_model.loss(xp, yp)
        pt_loss.backward()
        assert_close(loss, pt_loss, rtol=1e-5, atol=1e-4, name="loss")
        grads = dict(s.tl_model.named_parameters())
        for name, p in s.pt_model.named_parameters():
            if p.requires_grad:
                assert_close(grads[name].grad, p.grad, rtol=1e-3, atol=1e-4, name=name)
            else:
                assert grads[name].grad is None and p.grad is None, name
        assert np.isfinite(loss.item())
    bench.compare("dual supervised train step (784-500-10 + cond. MADE 784-500-784, batch 100)",
                  tl_step, pt_step, check=check, group="models")
