"""MUSE's adversarial round (tinylatent/models/muse.py, Conneau et al. 2018 Sec. 3.1): five
discriminator SGD steps (eq. 3, label smoothing 0.1), one mapping step (eq. 4) and the
orthogonality update W <- (1 + beta) W - beta (W W^T) W, next to a PyTorch twin written as
MUSE's own trainer (facebookresearch/MUSE src/trainer.py: dis_step, mapping_step,
orthogonalize) with the same initial weights and batches.

  * lockstep: 10 rounds on each side (no dropout, so both see the same network) give the
    same losses and the same W and discriminator weights to float32 rounding;
  * time of one round, d = 100, hidden 512 (the model's default), batch 32, with input
    dropout 0.1 on both sides; tinylatent / PyTorch, reported, never asserted.
"""
from __future__ import annotations

import numpy as np
import pytest

import tinylatent as tl
from benchmarks.harness import assert_close, torch
from tinylatent.models import MUSE


class TorchMUSE:
    """The PyTorch twin: the same layers, tinylatent's initial weights, MUSE's update rule."""

    def __init__(self, model: MUSE):
        from torch import nn
        cfg = self.cfg = model.config
        d, h = cfg.in_features, cfg.hidden_features
        self.mapping = nn.Linear(d, d, bias=False)
        self.discriminator = nn.Sequential(
            nn.Dropout(cfg.input_dropout), nn.Linear(d, h), nn.LeakyReLU(cfg.negative_slope),
            nn.Linear(h, h), nn.LeakyReLU(cfg.negative_slope), nn.Linear(h, 1))
        with torch.no_grad():
            self.mapping.weight.copy_(torch.from_numpy(model.weight.detach().numpy()))
            for name, p in self.discriminator.named_parameters():
                p.copy_(torch.from_numpy(model.discriminator.state_dict()[name].numpy()))
        self.opt_d = torch.optim.SGD(self.discriminator.parameters(), lr=cfg.lr)
        self.opt_w = torch.optim.SGD(self.mapping.parameters(), lr=cfg.map_lr)

    def _loss(self, src, tgt, flip: bool):
        s = self.cfg.smoothing
        x = torch.cat([self.mapping(src), tgt], 0)
        y = torch.cat([torch.full((len(src),), 1 - s), torch.full((len(tgt),), s)])
        logits = self.discriminator(x).reshape(-1)
        return torch.nn.functional.binary_cross_entropy_with_logits(
            logits, 1 - y if flip else y)

    def step(self, src, tgt):
        self.discriminator.train()
        for s, t in zip(src[:-1], tgt[:-1]):
            with torch.no_grad():
                s = self.mapping(s)
            loss_d = self._loss_mapped(s, t)
            self.opt_d.zero_grad()
            loss_d.backward()
            self.opt_d.step()
        self.discriminator.eval()
        loss_w = self._loss(src[-1], tgt[-1], flip=True)
        self.opt_w.zero_grad()
        loss_w.backward()
        self.opt_w.step()
        with torch.no_grad():      # MUSE's orthogonalize()
            w, beta = self.mapping.weight, self.cfg.beta
            w.copy_((1 + beta) * w - beta * w.mm(w.t()).mm(w))
        return loss_d.item(), loss_w.item()

    def _loss_mapped(self, mapped, tgt):
        s = self.cfg.smoothing
        x = torch.cat([mapped, tgt], 0)
        y = torch.cat([torch.full((len(mapped),), 1 - s), torch.full((len(tgt),), s)])
        return torch.nn.functional.binary_cross_entropy_with_logits(
            self.discriminator(x).reshape(-1), y)


def _batches(rng, d, cfg, rounds):
    x = rng.standard_normal((rounds, cfg.dis_steps + 1, cfg.batch_size, d)).astype(np.float32)
    y = rng.standard_normal((rounds, cfg.dis_steps + 1, cfg.batch_size, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True), \
        y / np.linalg.norm(y, axis=-1, keepdims=True)


def test_muse_round_lockstep():
    if torch is None:
        pytest.skip("PyTorch is not installed")
    tl.manual_seed(0)
    model = MUSE(in_features=16, hidden_features=32, input_dropout=0.0, map_lr=1.0)
    twin = TorchMUSE(model)
    opts = model.optimizers()
    src, tgt = _batches(np.random.default_rng(0), 16, model.config, 10)
    for i in range(10):
        d, w = model.adversarial_step(src[i], tgt[i], opts)
        pd, pw = twin.step(torch.from_numpy(src[i]), torch.from_numpy(tgt[i]))
        assert abs(d - pd) <= 1e-5 * abs(pd) and abs(w - pw) <= 1e-5 * abs(pw), (i, d, pd)
    assert_close(model.weight, twin.mapping.weight, rtol=1e-4, atol=1e-5, name="W")
    state = model.discriminator.state_dict()
    for name, p in twin.discriminator.named_parameters():
        assert_close(state[name], p, rtol=1e-4, atol=1e-5, name=name)


def test_muse_round_time(bench):
    d = 100
    tl.manual_seed(1)
    model = MUSE(in_features=d)
    src, tgt = _batches(bench.rng, d, model.config, 1)
    opts = model.optimizers()
    tl_fn = lambda: model.adversarial_step(src[0], tgt[0], opts)            # noqa: E731
    torch_fn = check = None
    if torch is not None:
        twin = TorchMUSE(model)
        ps, pt = torch.from_numpy(src[0]), torch.from_numpy(tgt[0])
        torch_fn = lambda: twin.step(ps, pt)                                 # noqa: E731

        def check():               # same weights before the round: same losses
            assert_close(model.weight, twin.mapping.weight, rtol=1e-4, atol=1e-5, name="W")
    bench.compare(f"MUSE adversarial round (5 D steps + W step + orthogonalize, d={d}, "
                  f"hidden {model.config.hidden_features}, batch 32)", tl_fn, torch_fn,
                  check=check, group="models")
