"""BERT (issue 20): one pre-training step (masked LM + NSP, forward, backward, AdamW) of the
CPU-size model (2 layers, d=128, 4 heads, V=2,000, batch 32 x 48 tokens, dropout off),
tinylatent next to the same model in PyTorch (benchmarks/bert_reference.py) from the same
weights on the same masked batch. Goal <= 1.2; reported, never asserted."""
from __future__ import annotations

import numpy as np

import tinylatent as tl
from benchmarks.harness import torch
from tinylatent.models.bert import BERT, BERTConfig

CFG = BERTConfig(in_features=2000, hidden_features=128, num_layers=2, num_heads=4,
                 block_size=48, dropout=0.0)


def _sides(batch_size):
    from benchmarks.bert_reference import TorchBERT, copy_weights, make_batch
    tl.manual_seed(0)
    tl_model = BERT(CFG)
    inputs, segments, labels, is_next = make_batch(CFG, batch_size)
    tl_batch = (tl.tensor(inputs), tl.tensor(segments), labels, tl.tensor(is_next))
    tl_opt = tl.optim.AdamW(tl_model.parameters(), lr=1e-4)
    pt = None
    if torch is not None:
        pt_model = TorchBERT(CFG)
        copy_weights(tl_model, pt_model)
        pt_batch = tuple(torch.from_numpy(np.asarray(a)) for a in (inputs, segments, labels,
                                                                    is_next))
        pt = (pt_model, pt_batch, torch.optim.AdamW(pt_model.parameters(), lr=1e-4))
    return (tl_model, tl_batch, tl_opt), pt


def test_bert_train_step(bench):
    batch_size = bench.pick(quick=8, full=32)
    (tl_model, tl_batch, tl_opt), pt = _sides(batch_size)

    def tl_step():
        loss, _ = tl_model.pretraining_loss(*tl_batch)
        tl_opt.zero_grad()
        loss.backward()
        tl_opt.step()
        return loss

    torch_step = check = None
    if pt is not None:
        pt_model, pt_batch, pt_opt = pt

        def torch_step():
            loss = pt_model.pretraining_loss(*pt_batch)
            pt_opt.zero_grad()
            loss.backward()
            pt_opt.step()
            return loss

        def check():
            from benchmarks.bert_reference import assert_same_gradients
            (m, b, _), (pm, pb, _) = _sides(batch_size)
            n = assert_same_gradients(m.pretraining_loss(*b)[0], m,
                                      pm.pretraining_loss(*pb), pm)
            assert n == len(list(m.parameters()))             # every parameter is used
    bench.compare(f"BERT pre-training step (2x128, V=2000, batch {batch_size} x 48)",
                  tl_step, torch_step, check=check, group="models", goal=1.2)
