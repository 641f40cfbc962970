"""The adversarial game of MUSE (Conneau et al. 2018, "Word Translation Without Parallel
Data", Sec. 2.1 and 3.1), mixed into tinylatent.models.MUSE.

A discriminator D (MLP, 2 hidden LeakyReLU layers, input dropout 0.1; Sec. 3.1) tells mapped
source words W x from target words y, trained with label smoothing s = 0.1 (source labelled
1 - s, target s):

    L_D = -(1/n) sum log P(source = 1 | W x_i) - (1/m) sum log P(source = 0 | y_i)   (eq. 3)
    L_W = -(1/n) sum log P(source = 0 | W x_i) - (1/m) sum log P(source = 1 | y_i)   (eq. 4)

by SGD, `dis_steps` steps of D per step of W, each W step followed by the orthogonality
update W <- (1 + beta) W - beta (W W^T) W (Sec. 3.3). The words fed to D are drawn uniformly
among the `most_frequent` of each language (Sec. 3.1). As facebookresearch/MUSE's
src/trainer.py (dis_step, mapping_step, orthogonalize); benchmarks/test_bench_muse.py runs
the two in lockstep.
"""
from __future__ import annotations

import numpy as np

from .. import nn
from ..eval import cross_lingual as xl
from ..losses import binary_cross_entropy_with_logits
from ..ops import cat
from ..tensor import Tensor
from .gan import frozen

__all__ = ["AdversarialGame", "discriminator"]


def discriminator(cfg, generator) -> nn.Sequential:
    """D of Sec. 3.1: input dropout, Linear, LeakyReLU, Linear, LeakyReLU, Linear -> logit."""
    d, h = cfg.in_features, cfg.hidden_features
    return nn.Sequential(
        nn.Dropout(cfg.input_dropout, generator=generator), nn.Linear(d, h),
        nn.LeakyReLU(cfg.negative_slope), nn.Linear(h, h),
        nn.LeakyReLU(cfg.negative_slope), nn.Linear(h, 1))


class AdversarialGame:
    """Eqs. 3-4 and their SGD rounds, on a module with `config`, `weight` (W), `generator`,
    `discriminator`, `source`, `target` and `encode` (MUSE)."""

    def _logits(self, mapped: Tensor, tgt: Tensor) -> tuple:
        x = cat([mapped, tgt], axis=0)                                   # (B_s + B_t, d)
        s = self.config.smoothing
        # eq. 3's labels with smoothing: mapped source 1 - s, target s
        y = np.r_[np.full(len(mapped), 1 - s), np.full(len(tgt), s)].astype(np.float32)
        return self.discriminator(x).reshape(-1), Tensor(y)             # (B_s + B_t,)

    def discriminator_loss(self, src: Tensor, tgt: Tensor) -> Tensor:
        """L_D (eq. 3) with W held fixed."""
        logits, y = self._logits(self.encode(src).detach(), tgt)
        return binary_cross_entropy_with_logits(logits, y)

    def mapping_loss(self, src: Tensor, tgt: Tensor) -> Tensor:
        """L_W (eq. 4): D's labels flipped, D's parameters frozen and in eval mode (no
        dropout, as MUSE's mapping step)."""
        was_training = self.discriminator.training
        self.discriminator.eval()
        try:
            with frozen(self.discriminator):
                logits, y = self._logits(self.encode(src), tgt)
                return binary_cross_entropy_with_logits(logits, 1 - y)
        finally:
            self.discriminator.train(was_training)

    def loss(self, batch) -> tuple:
        """(L_D + L_W, metrics) on batch = (source (B, d), target (B, d)) vectors, each
        player's gradient on its own loss (one optimizer step = both players' steps)."""
        src, tgt = batch
        d_loss, w_loss = self.discriminator_loss(src, tgt), self.mapping_loss(src, tgt)
        loss = d_loss + w_loss
        return loss, {"loss": loss.detach(), "d_loss": d_loss.detach(),
                      "w_loss": w_loss.detach()}

    # ------------------------------------------------------------------ training
    def optimizers(self) -> dict:
        """{"discriminator": SGD(D), "mapping": SGD(W)} at the config's lr (Sec. 3.1)."""
        from ..optim import SGD
        return {"discriminator": SGD(self.discriminator.parameters(), lr=self.config.lr),
                "mapping": SGD([self.weight], lr=self.config.map_lr)}

    def orthogonalize(self) -> None:
        """W <- (1 + beta) W - beta (W W^T) W (Sec. 3.3), in place."""
        w = self.weight.array.astype(np.float64)
        self.weight.array[...] = xl.orthogonalize(w, self.config.beta)

    def adversarial_step(self, src, tgt, optimizers: dict) -> tuple:
        """One round of Sec. 3.1: a D step (eq. 3) on each of src[:-1], tgt[:-1], then one W
        step (eq. 4) on src[-1], tgt[-1] and the orthogonality update. src, tgt:
        (dis_steps + 1, B, d) word vectors. Returns the last (L_D, L_W) as floats."""
        opt_d, opt_w = optimizers["discriminator"], optimizers["mapping"]
        for s, t in zip(src[:-1], tgt[:-1]):
            d_loss = self.discriminator_loss(Tensor(s), Tensor(t))
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
        w_loss = self.mapping_loss(Tensor(src[-1]), Tensor(tgt[-1]))
        opt_w.zero_grad()
        w_loss.backward()
        opt_w.step()
        self.orthogonalize()
        return d_loss.item(), w_loss.item()

    def adversarial_epoch(self, optimizers: dict, epoch: int = 0, progress=None) -> dict:
        """`epoch_size / batch_size` rounds of `dis_steps` D steps then one W step (each
        followed by the orthogonality update). Words drawn uniformly among the
        `most_frequent` of each language, from a stream seeded by (seed, epoch), so a
        resumed run repeats the same epoch. progress(i, n) after each round."""
        self._need_data("adversarial_epoch")
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, epoch])
        self.generator.manual_seed(cfg.seed * 100003 + epoch)
        n_src = min(cfg.most_frequent, len(self.source))
        n_tgt = min(cfg.most_frequent, len(self.target))
        rounds = max(1, cfg.epoch_size // cfg.batch_size)
        d_total = w_total = 0.0
        self.discriminator.train()
        for i in range(rounds):
            src = self.source[rng.integers(0, n_src, (cfg.dis_steps + 1, cfg.batch_size))]
            tgt = self.target[rng.integers(0, n_tgt, (cfg.dis_steps + 1, cfg.batch_size))]
            d_loss, w_loss = self.adversarial_step(src, tgt, optimizers)
            d_total, w_total = d_total + d_loss, w_total + w_loss
            if progress is not None:
                progress(i, rounds)
        return {"d_loss": d_total / rounds, "w_loss": w_total / rounds}

