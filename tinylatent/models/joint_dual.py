"""Joint dual learning (seed 000; He, Xia, Qin, Wang, Yu, Liu & Ma 2016, "Dual learning for
machine translation", NeurIPS): a primal model P(y | x; theta_AB) and a dual model
P(x | y; theta_BA), each a translation.Seq2Seq of its own, trained on a small parallel set
plus the two closed loops x -> y -> x and y -> x -> y on unlabelled monolingual sentences.

For x in language A (the B-side loop is the mirror image), K translations
y_k ~ P(. | x; theta_AB) are sampled and scored by the reconstruction reward
    r_k = log P(x | y_k; theta_BA) / |x|                (per token; their r_2, with their
                                                         LM reward r_1 left out, alpha = 0)
and the loop's gradients are those of He et al.'s Algorithm 1 (policy gradient for theta_AB,
the reconstruction's own gradient for theta_BA):
    grad theta_AB = -(1/K) sum_k (r_k - b_k) grad log P(y_k | x; theta_AB)     (REINFORCE)
    grad theta_BA = -(1/K) sum_k grad log P(x | y_k; theta_BA) / |x|
with the leave-one-out baseline b_k = mean_{j != k} r_j (unbiased; reduces the variance
that K = 2 raw rewards would have). The sampled y_k are constants (drawn without a graph),
so no gradient flows through the sampling itself. The supervised term is the usual
-log P(b | a) - log P(a | b) per target token on the parallel pairs, and
    L = L_sup + lambda_dual (L_loop(A) + L_loop(B)).
"""
from __future__ import annotations

from dataclasses import dataclass

import tinylatent as tl
from tinylatent import nn
from tinylatent.tensor import Tensor

from .config import resolve_config
from .translation import PAD, Seq2Seq

__all__ = ["JointDual", "JointDualConfig"]


@dataclass(frozen=True)
class JointDualConfig:
    in_features: int = 4004          # V, the joint vocabulary of both languages
    embedding_features: int = 64
    hidden_features: int = 128
    num_samples: int = 2             # K translations sampled per sentence (He et al.: 2)
    lambda_dual: float = 0.5         # weight of the closed-loop terms
    temperature: float = 1.0         # of the sampled translations
    max_length: int = 30


class JointDual(nn.Module):
    """`primal`: A (0) -> B (1); `dual`: B -> A. `loss((a, b, x_a, x_b))`: parallel (a, b)
    id batches, then monolingual x_a and x_b (either may be None: supervised only)."""

    def __init__(self, config: JointDualConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = resolve_config(self, JointDualConfig, config, overrides)
        if cfg.num_samples < 2:
            raise ValueError(f"JointDual: num_samples must be >= 2 for the leave-one-out "
                             f"baseline, got {cfg.num_samples}")
        V, E, H = cfg.in_features, cfg.embedding_features, cfg.hidden_features
        self.primal, self.dual = Seq2Seq(V, E, H), Seq2Seq(V, E, H)

    def models(self, src_lang: int):
        """(forward model from src_lang, backward model into it)."""
        return (self.primal, self.dual) if src_lang == 0 else (self.dual, self.primal)

    def encode(self, x: Tensor, lang: int = 0) -> Tensor:
        """The forward model's sentence code of `x` in language `lang`, (B, H)."""
        return self.models(lang)[0].encode(x, lang)

    def translate(self, x: Tensor, src_lang: int, tgt_lang: int | None = None,
                  max_length: int | None = None) -> Tensor:
        """Greedy translations by the primal (src_lang 0) or dual (1) model, no graph."""
        model = self.models(src_lang)[0]
        was = model.training
        model.eval()
        y = model.generate(x, src_lang, 1 - src_lang, max_length or self.config.max_length)
        model.train(was)
        return y

    def loop_loss(self, x: Tensor, lang: int, generator=None):
        """The closed loop x -> y_k -> x for x in language `lang` -> (surrogate loss, mean
        reward): the surrogate's gradient is the module doc's REINFORCE + reconstruction."""
        cfg = self.config
        fwd, bwd = self.models(lang)
        K, B = cfg.num_samples, x.shape[0]
        xs = x.repeat(K, 1)                                           # (K B, T), k-major
        ys = fwd.generate(xs, lang, 1 - lang, cfg.max_length, greedy=False,
                          generator=generator, temperature=cfg.temperature).detach()
        if (ys != PAD).float().sum(1).min().item() == 0:
            raise RuntimeError("JointDual: a sampled translation is empty")
        lengths = (xs != PAD).float().sum(1)                          # |x| (+ <eos>)
        recon = bwd.log_prob(ys, 1 - lang, xs, lang) / lengths        # r_k, (K B,)
        r = recon.detach().reshape(K, B)
        baseline = (r.sum(0, keepdim=True) - r) / (K - 1)             # leave-one-out b_k
        advantage = (r - baseline).reshape(K * B)
        logp_y = fwd.log_prob(xs, lang, ys, 1 - lang)                 # log P(y_k | x), (K B,)
        surrogate = -(advantage * logp_y).mean() - recon.mean()
        return surrogate, r.mean()

    def supervised_loss(self, a: Tensor, b: Tensor):
        return self.primal.nll(a, 0, b, 1), self.dual.nll(b, 1, a, 0)

    def loss(self, batch, generator=None):
        """-> (loss, metrics): "nll_ab", "nll_ba" (parallel pairs, nats per token) and, with
        monolingual batches, "reward_a", "reward_b" (mean reconstruction log-likelihood per
        token of the loops starting in A and in B)."""
        a, b, *mono = batch
        for name, x in (("a", a), ("b", b)):
            if x.ndim != 2 or x.dtype.kind not in "iu":
                raise ValueError(f"JointDual.loss: {name} must be (B, T) integer ids, got "
                                 f"shape {tuple(x.shape)} dtype {x.dtype}")
        ab, ba = self.supervised_loss(a, b)
        loss, m = ab + ba, {"nll_ab": ab.detach(), "nll_ba": ba.detach()}
        for lang, x in enumerate(mono[:2]):
            if x is not None and self.config.lambda_dual > 0:
                surrogate, reward = self.loop_loss(x, lang, generator)
                loss = loss + self.config.lambda_dual * surrogate
                m["reward_" + "ab"[lang]] = reward
        return loss, {"loss": loss.detach(), **m}
