"""PretextBERT (issue 20): one pre-training step (corruption, forward, backward, AdamW) of
each of the three other objectives (denoise, shuffle, delete) on the CPU-size encoder
(2 layers, d=128, 4 heads, V=2,000, batch 32 x 48 tokens, dropout off), tinylatent next to
the same model in PyTorch (benchmarks/bert_reference.py) from the same weights. Both sides
draw the corruption with the same NumPy functions from the same seed, so the step is the
same work; losses and gradients must agree first. Goal <= 1.2, as BERT's step; reported,
never asserted."""
from __future__ import annotations

import numpy as np
import pytest

import tinylatent as tl
from benchmarks.harness import torch
from tinylatent.models.bert_pretext import OBJECTIVES, PretextBERT, PretextBERTConfig


def _config(objective):
    return PretextBERTConfig(in_features=2000, hidden_features=128, num_layers=2, num_heads=4,
                             block_size=48, dropout=0.0, objective=objective)


def make_sentences(cfg, batch_size: int, seed: int = 0) -> np.ndarray:
    """[CLS] x [SEP] rows of random tokens, int64 (B, T); every 4th row padded after 30."""
    rng = np.random.default_rng(seed)
    t = cfg.block_size
    ids = rng.integers(cfg.num_special_tokens, cfg.in_features, (batch_size, t))
    ids[:, 0], ids[:, -1] = cfg.cls_token_id, cfg.sep_token_id
    for r in range(0, batch_size, 4):
        ids[r, 30], ids[r, 31:] = cfg.sep_token_id, cfg.pad_token_id
    return ids


def _sides(objective, batch_size):
    from benchmarks.bert_reference import TorchPretextBERT, copy_weights
    cfg = _config(objective)
    tl.manual_seed(0)
    model = PretextBERT(cfg)
    ids = make_sentences(cfg, batch_size)
    pt = None
    if torch is not None:
        pt = TorchPretextBERT(cfg)
        copy_weights(model, pt)
    return model, ids, pt


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_pretext_bert_train_step(bench, objective):
    batch_size = bench.pick(quick=8, full=32)
    model, ids, pt = _sides(objective, batch_size)
    tl_ids = tl.tensor(ids)
    opt = tl.optim.AdamW(model.parameters(), lr=1e-4)

    def tl_step():
        loss, _ = model.loss(tl_ids, generator=tl.Generator(1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    torch_step = check = None
    if pt is not None:
        pt_opt = torch.optim.AdamW(pt.parameters(), lr=1e-4)

        def torch_step():
            loss = pt.loss(ids, seed=1)
            pt_opt.zero_grad()
            loss.backward()
            pt_opt.step()
            return loss

        def check():
            from benchmarks.bert_reference import assert_same_gradients
            m, x, p = _sides(objective, batch_size)
            n = assert_same_gradients(m.loss(tl.tensor(x), generator=tl.Generator(1))[0], m,
                                      p.loss(x, seed=1), p)
            # the heads an objective does not train (NSP's, the MLM head under "shuffle")
            # get no gradient on either side; the encoder's parameters all do
            assert n >= len([k for k, _ in m.named_parameters() if k.startswith("layers")])
    bench.compare(f"PretextBERT {objective} step (2x128, V=2000, batch {batch_size} x 48)",
                  tl_step, torch_step, check=check, group="models", goal=1.2)
