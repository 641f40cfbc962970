"""The translation encoder-decoder's training step (issue 21): tinylatent's Seq2Seq next to
a PyTorch twin with the same weights (benchmarks/translation_reference.py). Values first:
the loss and every gradient agree from copied weights, and a few Adam steps stay in
lockstep; then the time of one step (forward, backward, Adam), reported, never asserted, at
the size examples/translate_kjv.py trains (V = 2,004, 64-128, batch 32, 21 tokens)."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.harness import assert_close, torch


def _pair(**kw):
    from benchmarks.translation_reference import TranslationSideBySide
    return TranslationSideBySide(**kw)


def test_translation_loss_and_gradients_match_pytorch():
    if torch is None:
        pytest.skip("PyTorch is not installed")
    import tinylatent as tl
    from benchmarks.translation_reference import sentence_batch
    s = _pair(V=64, E=8, H=12)
    src, tgt = sentence_batch(6, 9, 64)
    a = s.tl_model.nll(tl.tensor(src), 0, tl.tensor(tgt), 1)
    b = s.pt_model.nll(torch.from_numpy(src), 0, torch.from_numpy(tgt), 1)
    assert_close(a.item(), b.item(), rtol=1e-5, name="loss")
    a.backward()
    b.backward()
    pt = dict(s.pt_model.named_parameters())
    for name, p in s.tl_model.named_parameters():
        assert_close(p.grad.numpy(), pt[name].grad.numpy(), rtol=1e-3, atol=1e-6, name=name)
    losses = np.array([(s.tl_step(src, tgt), s.pt_step(src, tgt)) for _ in range(5)])
    np.testing.assert_allclose(losses[:, 0], losses[:, 1], rtol=1e-4)


def test_translation_train_step(bench):
    if torch is None:
        pytest.skip("PyTorch is not installed")
    from benchmarks.translation_reference import sentence_batch
    src, tgt = sentence_batch(32, 20, 2004)
    s = _pair()

    def check():
        ref = _pair()
        a, b = ref.tl_step(src, tgt), ref.pt_step(src, tgt)
        assert abs(a - b) < 1e-5 * abs(b), (a, b)

    bench.compare("translation seq2seq train step (V=2004, 64-128 BiLSTM + attention, "
                  "batch 32, 21 tokens)", lambda: s.tl_step(src, tgt),
                  lambda: s.pt_step(src, tgt), check=check, group="models", goal=1.5)
