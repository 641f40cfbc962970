"""Unsupervised machine translation (seed 003; Lample, Conneau, Denoyer & Ranzato 2018,
"Unsupervised machine translation using monolingual corpora only", ICLR).

One encoder and one decoder shared by both languages (translation.Seq2Seq: an attentional
LSTM, the language given by a language embedding), trained on monolingual sentences only:

    L_auto(l)  = E_{x ~ D_l} [ -log p(x | C(x), l -> l) ]                       (eq. 1)
    L_cd(l1, l2) = E_{x ~ D_l1} [ -log p(x | y, l2 -> l1) ],  y = M(x) in l2     (eq. 2)
    L = lambda_auto (L_auto(A) + L_auto(B)) + lambda_cd (L_cd(A, B) + L_cd(B, A))

C is the noise model of sec. 2.3: each word dropped with probability p_wd, then a local
shuffle, sigma = argsort(i + U(0, k + 1)), which moves no word more than k positions (a
pair i < j with j - i > k keeps its order, since i + U(0, k + 1) < j). M is the previous
iteration's translator (sec. 2.4): at iteration 0 a word-by-word translation through an
unsupervised dictionary (MUSE, Conneau et al. 2018), then the model itself, frozen for the
iteration; its translations are computed without a graph, so no gradient reaches M (the
paper likewise does not back-propagate through the back-translation).

The adversarial latent term of sec. 2.5 (lambda_adv > 0): a discriminator D (an MLP on
each encoder state z_t, LeakyReLU) learns which language a state came from,
    L_D = -E_{(x, l)} [ mean_t log p_D(l | z_t(x, l)) ]                            (eq. 3)
while the encoder is trained to make it predict the other language,
    L_adv = -E_{(x, l)} [ mean_t log p_D(1 - l | z_t(x, l)) ]                      (eq. 4)
added to L with weight lambda_adv (D held fixed there). `discriminator_loss` is L_D on
detached states; `translation_parameters()` are the parameters L steps (all but D's).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

import tinylatent as tl
from tinylatent import nn
from tinylatent.tensor import Tensor

from .config import resolve_config
from .gan import frozen
from .translation import EOS, PAD, Seq2Seq

__all__ = ["UnsupervisedTranslation", "UnsupervisedTranslationConfig", "add_noise"]


@dataclass(frozen=True)
class UnsupervisedTranslationConfig:
    in_features: int = 4004          # V, the joint vocabulary (specials + both languages)
    embedding_features: int = 64
    hidden_features: int = 128
    word_drop: float = 0.1           # p_wd of sec. 2.3
    shuffle_k: int = 3               # k of sec. 2.3
    lambda_auto: float = 1.0
    lambda_cd: float = 1.0
    max_length: int = 30             # longest generated translation
    lambda_adv: float = 0.0          # sec. 2.5's adversarial latent term (0: off, no D)
    adv_hidden: int = 256            # D's width (the paper: 3 x 1024)
    adv_layers: int = 3              # D's hidden layers


def add_noise(x, p_wd: float, k: int, generator=None) -> np.ndarray:
    """C(x) of Lample et al. (sec. 2.3) on (B, T) ids ending in <eos> then <pad>: word drop,
    then a local shuffle moving no word more than k positions; <eos> stays last. A sentence
    keeps at least one word. Returns (B, T) ids, right-padded again."""
    x = x.numpy() if isinstance(x, Tensor) else np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"add_noise: x must be (B, T) ids, got shape {x.shape}")
    if not 0 <= p_wd < 1 or k < 0:
        raise ValueError(f"add_noise: need 0 <= p_wd < 1 and k >= 0, got {p_wd}, {k}")
    B, T = x.shape
    u = tl.rand(2, B, T, generator=generator).numpy()              # drop and shuffle draws
    out = np.full_like(x, PAD)
    for i in range(B):
        n = int(np.sum((x[i] != PAD) & (x[i] != EOS)))
        words = x[i, :n]
        keep = u[0, i, :n] >= p_wd
        if not keep.any() and n:
            keep[np.argmax(u[0, i, :n])] = True                    # never an empty sentence
        words = words[keep]
        q = np.arange(len(words)) + u[1, i, :len(words)] * (k + 1)   # i + U(0, k + 1)
        order = np.argsort(q, kind="stable")
        out[i, :len(words)] = words[order]
        if len(words) < T:                                         # a row without <eos>
            out[i, len(words)] = EOS                               # stays without one
    return out


class UnsupervisedTranslation(nn.Module):
    """Languages 0 (A) and 1 (B); `loss((x_a, x_b))` on monolingual (B, T) id batches."""

    def __init__(self, config: UnsupervisedTranslationConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = resolve_config(self, UnsupervisedTranslationConfig, config,
                                           overrides)
        self.seq2seq = Seq2Seq(cfg.in_features, cfg.embedding_features, cfg.hidden_features)
        if cfg.lambda_adv < 0:
            raise ValueError(f"UnsupervisedTranslation: lambda_adv must be >= 0, got "
                             f"{cfg.lambda_adv}")
        if cfg.lambda_adv > 0:       # D: H -> adv_hidden (x adv_layers) -> 2 languages
            widths = [cfg.hidden_features] + [cfg.adv_hidden] * cfg.adv_layers
            self.discriminator = nn.Sequential(
                *[m for a, b in zip(widths[:-1], widths[1:])
                  for m in (nn.Linear(a, b), nn.LeakyReLU(0.2))], nn.Linear(widths[-1], 2))

    def translation_parameters(self) -> list:
        """Every parameter but the discriminator's: what the translation loss steps."""
        return list(self.seq2seq.parameters())

    def _language_nll(self, x: Tensor, lang: int, target: int, grad: bool) -> tuple:
        """(mean_t -log p_D(target | z_t), D's accuracy at predicting lang) over the real
        tokens of x's encoder states; grad=False: on detached states (D's own loss)."""
        with contextlib.nullcontext() if grad else tl.no_grad():
            z, mask = self.seq2seq.encode_states(x, lang)                  # (B, S, H), (B, S)
        if not grad:
            z = z.detach()
        logp = self.discriminator(z).log_softmax(-1)                       # (B, S, 2)
        nll = -(logp[..., target] * mask).sum() / mask.sum()
        correct = ((logp.detach().argmax(-1) == lang).float() * mask).sum() / mask.sum()
        return nll, correct

    def discriminator_loss(self, batch) -> tuple:
        """L_D (eq. 3) on both languages' states, D's parameters only -> (loss, metrics)."""
        if not hasattr(self, "discriminator"):
            raise ValueError("UnsupervisedTranslation.discriminator_loss: lambda_adv is 0, so "
                             "there is no discriminator")
        (na, acc_a), (nb, acc_b) = (self._language_nll(x, lang, lang, grad=False)
                                    for lang, x in enumerate(batch))
        loss = (na + nb) / 2
        return loss, {"loss": loss.detach(), "d_accuracy": ((acc_a + acc_b) / 2).detach()}

    def encode(self, x: Tensor, lang: int = 0) -> Tensor:
        """The shared latent code of sentences in language `lang`, (B, H)."""
        return self.seq2seq.encode(x, lang)

    def translate(self, x: Tensor, src_lang: int, tgt_lang: int,
                  max_length: int | None = None) -> Tensor:
        """Greedy translations (B, <= max_length), no graph, stopped at <eos>."""
        was = self.training
        self.eval()
        y = self.seq2seq.generate(x, src_lang, tgt_lang, max_length or self.config.max_length)
        self.train(was)
        return y

    def noise(self, x, generator=None) -> Tensor:
        return tl.tensor(add_noise(x, self.config.word_drop, self.config.shuffle_k, generator))

    def back_translate(self, x: Tensor, lang: int, translator=None) -> Tensor:
        """y = M(x) in the other language, a constant (no graph): M is `translator`
        (a callable (x, src_lang, tgt_lang) -> ids, e.g. a WordByWord or a frozen copy's
        `translate`) or else this model's greedy translation."""
        with tl.no_grad():
            y = (translator or self.translate)(x, lang, 1 - lang)
        return y.detach()

    def loss(self, batch, translator=None, generator=None):
        """-> (loss, metrics): "auto_a", "auto_b" (eq. 1), "cd_a", "cd_b" (eq. 2), nats
        per target token, and "adv_a", "adv_b" (eq. 4) when lambda_adv > 0; `translator`
        as in `back_translate`."""
        x_a, x_b = batch
        for name, x in (("x_a", x_a), ("x_b", x_b)):
            if x.ndim != 2 or x.dtype.kind not in "iu":
                raise ValueError(f"UnsupervisedTranslation.loss: {name} must be (B, T) "
                                 f"integer ids, got shape {tuple(x.shape)} dtype {x.dtype}")
        cfg, m = self.config, {}
        total = 0.0
        for lang, x, tag in ((0, x_a, "a"), (1, x_b, "b")):
            if cfg.lambda_auto > 0:
                m["auto_" + tag] = self.seq2seq.nll(self.noise(x, generator), lang, x, lang)
                total = total + cfg.lambda_auto * m["auto_" + tag]
            if cfg.lambda_cd > 0:
                y = self.back_translate(x, lang, translator)
                m["cd_" + tag] = self.seq2seq.nll(y, 1 - lang, x, lang)
                total = total + cfg.lambda_cd * m["cd_" + tag]
            if cfg.lambda_adv > 0:     # fool D into the other language; D itself fixed
                with frozen(self.discriminator):
                    m["adv_" + tag], _ = self._language_nll(x, lang, 1 - lang, grad=True)
                total = total + cfg.lambda_adv * m["adv_" + tag]
        return total, {"loss": total.detach(), **{k: v.detach() for k, v in m.items()}}

    def supervised_loss(self, batch):
        """The supervised reference of the same architecture: -log p(b | a) - log p(a | b)
        on parallel (a, b) id batches, nats per target token -> (loss, metrics)."""
        a, b = batch
        ab, ba = self.seq2seq.nll(a, 0, b, 1), self.seq2seq.nll(b, 1, a, 0)
        loss = ab + ba
        return loss, {"loss": loss.detach(), "nll_ab": ab.detach(), "nll_ba": ba.detach()}
