"""LSTM and Transformer language models (issue 16): tinylatent next to PyTorch, same recipe,
same initial weights, same batches (see benchmarks/lm_reference.py).

Figures:
  * lockstep (quick and full): with dropout off, the training losses of the first steps
    agree to float rounding (what proves the recipes are the same, step by step);
  * the time of one training step, tinylatent / PyTorch (goal <= 1.2), reported, never
    asserted: LSTM word-level on the KJV (V = 7,081, 200-200, batch 20, BPTT 35) and the
    CPU-size GPT on Botchan characters (4 x 128, context 64, batch 32);
  * quality (full mode only): validation nats per token after the same number of steps of
    the same recipe (dropout off), within 0.02 nats.
"""
from __future__ import annotations

import pytest

from benchmarks.harness import torch

TOLERANCE_NATS = 0.02
SETUPS = {"lstm": dict(corpus="kjv", level="word"),
          "transformer": dict(corpus="botchan", level="char")}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("TINYLATENT_OFFLINE", "1")


def _side_by_side(kind, **kw):
    from benchmarks.lm_reference import LMSideBySide
    return LMSideBySide(kind, **SETUPS[kind], **kw)


@pytest.mark.parametrize("kind", sorted(SETUPS))
def test_lm_lockstep_same_weights_same_losses(bench, kind):
    if torch is None:
        pytest.skip("PyTorch is not installed")
    s = _side_by_side(kind, dropout=0.0, total_steps=100)
    # SGD at lr 20 is chaotic: from step ~12 the two runs part (full mode, 2026-12-07: 1.6e-3
    # relative at step 12, 2% at step 14), so the LSTM is held in lockstep for 10 steps
    steps = bench.pick(quick=5, full=10 if kind == "lstm" else 20)
    tl_losses, pt_losses, _, _ = s.paired_steps(steps)
    print(kind, "tl", [f"{v:.5f}" for v in tl_losses])
    print(kind, "pt", [f"{v:.5f}" for v in pt_losses])
    assert abs(tl_losses[0] - pt_losses[0]) < 1e-5 * abs(pt_losses[0])
    # SGD at lr 20 (the LSTM recipe) amplifies float rounding: measured 1.5e-4 relative by
    # step 3; AdamW at 1e-3 stays below 1e-6
    rtol = 2e-3 if kind == "lstm" else 1e-4
    for a, b in zip(tl_losses, pt_losses):
        assert abs(a - b) <= rtol * abs(b), (kind, tl_losses, pt_losses)


@pytest.mark.parametrize("kind", sorted(SETUPS))
def test_lm_train_step(bench, kind):
    """One training step (forward, backward, clip, optimizer), tinylatent / PyTorch."""
    s = _side_by_side(kind, dropout=0.0, total_steps=10 ** 6)
    x, y = s.next_batch()
    s.tl_hidden = s.pt_hidden = None

    def tl_fn():
        s.tl_step(x, y)

    def torch_fn():
        s.pt_step(x, y)

    def check():
        ref = _side_by_side(kind, dropout=0.0, total_steps=100)
        a, b = ref.tl_step(x, y), ref.pt_step(x, y)
        assert abs(a - b) < 1e-5 * abs(b), (a, b)
    name = ("lstm LM train step (V=7081, 2x200, batch 20, bptt 35)" if kind == "lstm" else
            "transformer LM train step (V=78, 4x128, 4 heads, batch 32, context 64)")
    bench.compare(name, tl_fn, torch_fn if torch is not None else None,
                  check=check if torch is not None else None, group="models", goal=1.2)


QUALITY_STEPS = {"lstm": 500, "transformer": 1000}
LSTM_NOT_MET = ("not met: SGD at lr 20 is chaotic at the start; from the same weights and "
                "batches, dropout off, the two trainings' losses part after ~15 steps (by "
                "+-0.4 nats at step 20), so they are two runs of one recipe; measured valid "
                "diff -0.002 at 250 steps, -0.036 at 500 (one seed)")


@pytest.mark.parametrize("kind", [pytest.param("lstm", marks=pytest.mark.xfail(
    reason=LSTM_NOT_MET, strict=False)), "transformer"])
def test_lm_validation_loss_matches_pytorch(bench, kind):
    """Validation loss after the same steps from the same weights and batches, dropout off,
    within 0.02 nats. Measured (python -m benchmarks.lm_reference, one seed, 2 shared
    cores): transformer 1.7000 vs 1.7000 after 1,000 steps (AdamW at 1e-3 keeps the two
    trainings together); LSTM: see LSTM_NOT_MET. With the recipe's dropout 0.2 (each
    library's own masks) the LSTM differed by +0.020, -0.061, +0.003, -0.057 nats after 250,
    500, 750, 1,000 steps."""
    if bench.quick:
        pytest.skip("full mode only (500-1,000 steps per library)")
    if torch is None:
        pytest.skip("PyTorch is not installed")
    steps = QUALITY_STEPS[kind]
    s = _side_by_side(kind, dropout=0.0, total_steps=steps)
    s.paired_steps(steps)
    a, b = s.valid_losses()
    notes = f"{kind}: valid nats/token after {steps} steps tl {a:.4f} vs torch {b:.4f}"
    print(notes)
    bench.record(f"{kind} LM valid loss after {steps} steps ({SETUPS[kind]['corpus']} "
                 f"{SETUPS[kind]['level']}, dropout 0)", a, b, unit="nats/token", notes=notes)
    assert abs(a - b) <= TOLERANCE_NATS, notes
