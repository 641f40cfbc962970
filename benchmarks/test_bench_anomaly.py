"""What anomaly mode costs: the 10-op small graph (forward + backward) of test_bench_core.py
with tl.autograd.detect_anomaly off and on, each next to PyTorch with its own
torch.autograd.detect_anomaly off and on. Off must cost nothing (the mode swaps the plain
Function.apply back in); on, every op is checked for NaN/Inf and records its creation stack.
The figures are reported, never asserted: the assertions are about correctness only (same
values and gradients, and both libraries catch the same NaN when the mode is on)."""
from __future__ import annotations

import numpy as np
import pytest

import tinylatent as tl
from benchmarks.harness import assert_close, torch
from benchmarks.test_bench_core import _small_graph_arrays, _small_graph_step


@pytest.mark.parametrize("on", [False, True], ids=["off", "on"])
def test_anomaly_mode_overhead(bench, on):
    x_np, w_np, b_np = _small_graph_arrays(bench.rng)
    xt, wt, bt = (tl.tensor(a, requires_grad=True) for a in (x_np, w_np, b_np))
    tl_mode = tl.autograd.detect_anomaly() if on else None

    def tl_fn():
        return _small_graph_step(tl, (xt, wt, bt), tl_mode)

    torch_fn = None
    if torch is not None:
        xp, wp, bp = (torch.tensor(a, requires_grad=True) for a in (x_np, w_np, b_np))
        torch_mode = torch.autograd.detect_anomaly() if on else None

        def torch_fn():
            return _small_graph_step(torch, (xp, wp, bp), torch_mode)

    def check():
        assert_close(tl_fn(), torch_fn(), rtol=1e-5, atol=1e-6, name="loss")
        assert_close([xt.grad, wt.grad, bt.grad], [xp.grad, wp.grad, bp.grad],
                     rtol=1e-4, atol=1e-6, name="grads (x, w, b)")
        if on:   # both name the op whose backward made a NaN: d sqrt(u)/du at u = 0 is
            # infinite, times an incoming gradient of 0 is 0 * inf = NaN
            with tl.autograd.detect_anomaly(), np.errstate(all="ignore"):
                with pytest.raises(tl.autograd.AnomalyError, match="Sqrt backward"):
                    ((xt - xt).sqrt() * 0.0).sum().backward()
            with torch.autograd.detect_anomaly():
                with pytest.raises(RuntimeError, match="SqrtBackward"):
                    ((xp - xp).sqrt() * 0.0).sum().backward()
        assert not tl.autograd.is_anomaly_enabled()

    bench.compare(f"small graph fwd+bwd, anomaly mode {'on' if on else 'off'}", tl_fn,
                  torch_fn, check=check, group="anomaly",
                  notes="compare the tinylatent times of the 'off' and 'on' rows for the "
                        "mode's own cost")
