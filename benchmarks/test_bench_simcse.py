"""SimCSE (issue 18): one unsupervised training step (the batch twice through the encoder
in one pass, eq. 4 in-batch InfoNCE at tau = 0.05, backward, Adam) of the CPU-size sentence
encoder (a 2-layer d = 128 BERT, V = 2,000, 48 tokens, dropout off so that both sides see
the same network), tinylatent next to the same model in PyTorch (the BERT twin of
benchmarks/bert_reference.py) from the same weights on the same token ids.

Values first (the part that can fail): the loss and every gradient agree. Then the time of
one step, tinylatent / PyTorch (goal <= 1.2, as BERT's), reported, never asserted."""
from __future__ import annotations

import numpy as np

import tinylatent as tl
from benchmarks.harness import torch
from benchmarks.test_bench_models import Workload
from tinylatent.models import SimCSE

CFG = dict(in_features=2000, hidden_features=128, num_layers=2, num_heads=4, block_size=48,
           dropout=0.0)


def _ids(batch_size, seed=0):
    """[CLS] w ... w [SEP] [PAD] ...: verse-like rows of 10 - 46 random word ids."""
    rng = np.random.default_rng(seed)
    ids = np.full((batch_size, 48), 1, np.int64)                        # [PAD] = 1
    for r in range(batch_size):
        n = rng.integers(10, 47)
        ids[r, 0], ids[r, 1:n + 1], ids[r, n + 1] = 2, rng.integers(5, 2000, n), 3
    return ids


def torch_simcse_loss(model, ids, tau):
    """PyTorch's SimCSE eq. 4 on the BERT twin: [CLS] -> pooler MLP (tanh), twice."""
    F = torch.nn.functional
    b = model.encoder
    x2 = torch.cat([ids, ids])                                           # (2B, T)
    h = b.tok_emb(x2) + b.pos_emb(torch.arange(x2.shape[1])) + b.seg_emb(torch.zeros_like(x2))
    h = b.drop(b.emb_norm(h))
    for layer in b.layers:
        h = layer(h, src_key_padding_mask=x2 == 1)
    z = F.normalize(torch.tanh(b.pooler(h[:, 0])), dim=-1)              # (2B, d)
    n = ids.shape[0]
    logits = z[:n] @ z[n:].T / tau                                       # (B, B)
    return F.cross_entropy(logits, torch.arange(n))


def _sides(batch_size):
    """(tinylatent Workload, PyTorch Workload or None): same weights, same ids, Adam."""
    from benchmarks.bert_reference import TorchBERT, copy_weights
    tl.manual_seed(0)
    model = SimCSE(**CFG)
    ids = _ids(batch_size)
    tl_ids, tau = tl.tensor(ids), model.config.temperature
    tl_side = Workload(tl, model, lambda m: m.loss(tl_ids)[0], lr=1e-4)
    if torch is None:
        return tl_side, None
    twin = torch.nn.Module()
    twin.encoder = TorchBERT(model.encoder.config)
    copy_weights(model, twin)
    pids = torch.from_numpy(ids)
    return tl_side, Workload(torch, twin, lambda m: torch_simcse_loss(m, pids, tau), lr=1e-4)


def test_simcse_train_step(bench):
    batch_size = bench.pick(quick=16, full=64)
    tl_side, pt_side = _sides(batch_size)

    def check():
        from benchmarks.bert_reference import assert_same_gradients
        a, b = _sides(batch_size)
        used = assert_same_gradients(a.loss_fn(a.model), a.model, b.loss_fn(b.model), b.model)
        assert used >= 20, used                             # the encoder's parameters

    bench.compare(f"SimCSE unsupervised step (BERT 2x128, V=2000, batch 2x{batch_size} x 48, "
                  "in-batch InfoNCE, Adam)", tl_side.step,
                  None if pt_side is None else pt_side.step,
                  check=None if pt_side is None else check, group="models", goal=1.2)
