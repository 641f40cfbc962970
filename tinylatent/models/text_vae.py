"""Sentence VAE (seeds 000, 004; Bowman, Vilnis, Vinyals, Dai, Jozefowicz & Bengio 2016,
"Generating sentences from a continuous space", CoNLL, sec. 3).

    q(z | x) = N(mu, diag(exp(logvar))),  (mu, logvar) = W h_T,  h_T the last state of an
               LSTM encoder read over the sentence;
    p(x | z) = prod_t softmax(W_o s_t)[x_t],  s_t = LSTM([e(x~_{t-1}); z], state_0 =
               (tanh(W_z z), 0)),  x~ the inputs after word dropout;
    loss = E_q[-log p(x | z)] + beta * KL(q || N(0, I))      (per sentence, nats)
Against posterior collapse (their sec. 3.1): KL annealing (beta from 0 to 1,
`kl_anneal_weight`), word dropout (each decoder input but the start token replaced by
<unk> with probability `word_dropout`, so the decoder must lean on z), and free bits
(Kingma et al. 2016, eq. 15) as the image VAE has. BN-VAE (Zhu, Bi, Liu, Ma, Li & Wu 2020,
"A batch normalized inference network keeps the KL vanishing away", eq. 6) batch-normalizes
each mu_j with a fixed scale gamma and a learnt shift beta_j, so over the data
E[mu_j^2] = gamma^2 + beta_j^2 and the expected KL is at least Z gamma^2 / 2. Batches are
(B, T) ids ending in eos and right-padded with pad_id; padding is masked out of every sum.
`log_prob` is the importance-weighted bound of Burda et al. 2016, the test NLL to set against
a language model.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import tinylatent as tl
from tinylatent import nn
from tinylatent.distributions import Categorical, Normal, kl_divergence
from tinylatent.tensor import Tensor

from .config import resolve_config
from .vae import kl_anneal_weight

__all__ = ["TextVAE", "TextVAEConfig", "kl_anneal_weight"]


def _check_ids(name, x):
    if x.ndim != 2 or x.dtype.kind not in "iu":
        raise ValueError(f"{name}: x must be (B, T) integer ids, got shape "
                         f"{tuple(x.shape)} dtype {x.dtype}")


@dataclass(frozen=True)
class TextVAEConfig:
    in_features: int = 2000          # V, vocabulary size (specials included)
    embedding_features: int = 128
    hidden_features: int = 256
    latent_features: int = 32
    word_dropout: float = 0.3        # Bowman et al.'s keep rate 1 - this (sec. 3.1)
    free_bits: float = 0.0           # lambda nats per latent dimension (0 = off)
    mu_batchnorm: float = 0.0        # BN-VAE's fixed gamma on mu (Zhu et al. 2020; 0 = off)
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    unk_id: int = 3
    sample_length: int = 24          # T of `sample` / `decode`


class TextVAE(nn.Module):
    def __init__(self, config: TextVAEConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = resolve_config(self, TextVAEConfig, config, overrides)
        V, E, H, Z = (cfg.in_features, cfg.embedding_features, cfg.hidden_features,
                      cfg.latent_features)
        self.embedding = nn.Embedding(V, E)  # shared by encoder and decoder (Bowman et al.)
        self.encoder = nn.LSTM(E, H, batch_first=True)
        self.to_posterior = nn.Linear(H, 2 * Z)
        if cfg.mu_batchnorm > 0:  # BN-VAE: batch-normalized mu with a fixed scale gamma
            self.mu_norm = nn.BatchNorm1d(Z)
            self.mu_norm.weight.array[...] = cfg.mu_batchnorm
            self.mu_norm.weight.requires_grad_(False)
        self.to_state = nn.Linear(Z, H)
        self.decoder = nn.LSTM(E + Z, H, batch_first=True)
        self.output = nn.Linear(H, V)

    def _mask(self, x):
        return (x != self.config.pad_id).float()  # (B, T) 1 on real tokens

    def encode_posterior(self, x: Tensor) -> tuple:
        """(mu, logvar) of q(z | x), each (B, Z): the encoder's state at each last token."""
        out, _ = self.encoder(self.embedding(x))  # (B, T, H)
        last = (self._mask(x).sum(1) - 1).clamp(min=0).long()  # (B,) index of the last token
        h = out[tl.arange(x.shape[0]), last]  # (B, H)
        mu, logvar = self.to_posterior(h).chunk(2, -1)
        if self.config.mu_batchnorm > 0:
            mu = self.mu_norm(mu)
        return mu, logvar

    def encode(self, x: Tensor) -> Tensor:
        """The posterior mean, (B, Z)."""
        return self.encode_posterior(x)[0]

    def decode_logits(self, inputs: Tensor, z: Tensor) -> Tensor:
        """Logits (B, T, V) of x_t given decoder inputs (B, T) and z (B, Z)."""
        B, T = inputs.shape
        emb = self.embedding(inputs)  # (B, T, E)
        zs = z.unsqueeze(1).expand(B, T, z.shape[-1])  # (B, Z) -> (B, T, Z): z at every step
        h0 = self.to_state(z).tanh().unsqueeze(0)  # (1, B, H)
        out, _ = self.decoder(tl.cat([emb, zs], axis=-1), (h0, tl.zeros_like(h0)))
        return self.output(out)

    def _inputs(self, x, generator=None):
        bos = tl.full((x.shape[0], 1), self.config.bos_id, dtype=x.dtype)
        inputs = tl.cat([bos, x[:, :-1]], axis=1)  # (B, T): [bos, x_1..x_{T-1}]
        p = self.config.word_dropout
        if self.training and p > 0:  # word dropout, never on the start token
            drop = tl.rand(*inputs.shape, generator=generator) < p
            drop[:, 0] = False
            inputs = tl.where(drop, tl.full(inputs.shape, self.config.unk_id,
                                            dtype=x.dtype), inputs)
        return inputs

    def loss(self, x: Tensor, kl_weight: float = 1.0, generator=None):
        """Negative ELBO per sentence -> (loss, metrics): "nll" = E_q[-log p(x|z)],
        "kl", "neg_elbo" = nll + kl (the bound, whatever beta / free bits), "kl_weight"."""
        _check_ids("TextVAE.loss", x)
        mu, logvar = self.encode_posterior(x)
        q = Normal(mu, (0.5 * logvar).exp(), validate_args=False)
        z = q.rsample(generator=generator)
        logits = self.decode_logits(self._inputs(x, generator), z)
        nll = -(Categorical(logits=logits).log_prob(x) * self._mask(x)).sum(1).mean()
        prior = Normal(tl.zeros_like(mu), tl.ones_like(mu), validate_args=False)
        kl_dims = kl_divergence(q, prior)  # (B, Z)
        kl = kl_dims.sum(1).mean()
        lam = self.config.free_bits
        kl_term = tl.maximum(kl_dims.mean(0), lam).sum() if lam > 0 else kl
        loss = nll + kl_weight * kl_term
        d = {"nll": nll.detach(), "kl": kl.detach()}
        return loss, {"loss": loss.detach(), **d, "neg_elbo": d["nll"] + d["kl"],
                      "kl_weight": tl.tensor(float(kl_weight), dtype=loss.dtype)}

    @tl.no_grad()
    def neg_elbo(self, x: Tensor) -> Tensor:
        """-ELBO per sentence (B,), one posterior draw: an upper bound on -log p(x)."""
        was = self.training
        self.eval()
        mu, logvar = self.encode_posterior(x)
        q = Normal(mu, (0.5 * logvar).exp(), validate_args=False)
        z = q.rsample()
        logits = self.decode_logits(self._inputs(x), z)
        nll = -(Categorical(logits=logits).log_prob(x) * self._mask(x)).sum(1)
        kl = kl_divergence(q, Normal(tl.zeros_like(mu), tl.ones_like(mu))).sum(1)
        self.train(was)
        return nll + kl

    @tl.no_grad()
    def log_prob(self, x: Tensor, k: int = 100, chunk: int = 10, generator=None) -> Tensor:
        """Importance-sampled log p(x) per sentence, (B,) nats (Burda et al. 2016, eq. 8):

            L_k = log 1/k sum_i p(x | z_i) p(z_i) / q(z_i | x),   z_i ~ q(z | x)

        E[L_1] is the ELBO and E[L_k] grows with k to log p(x), so -L_k is a tighter test
        NLL than the -ELBO (the estimate Bowman et al. 2016 and He et al. 2019 report).
        Decoded without word dropout, `chunk` draws at a time: memory (chunk * B, T, V)."""
        _check_ids("TextVAE.log_prob", x)
        if k < 1 or chunk < 1:
            raise ValueError(f"TextVAE.log_prob: k and chunk must be >= 1, got k={k}, "
                             f"chunk={chunk}")
        was = self.training
        self.eval()
        B, T = x.shape
        mu, logvar = self.encode_posterior(x)
        q = Normal(mu, (0.5 * logvar).exp(), validate_args=False)
        prior = Normal(tl.zeros_like(mu), tl.ones_like(mu), validate_args=False)
        inputs, mask = self._inputs(x), self._mask(x)
        log_w = []
        for start in range(0, k, chunk):
            n = min(chunk, k - start)
            z = q.sample((n,), generator=generator)  # (n, B, Z)
            logits = self.decode_logits(inputs.repeat(n, 1), z.reshape(n * B, -1))
            log_px_z = (Categorical(logits=logits).log_prob(x.repeat(n, 1))
                        * mask.repeat(n, 1)).sum(1).reshape(n, B)  # (n * B, T) -> (n, B)
            log_w.append(log_px_z + prior.log_prob(z).sum(-1) - q.log_prob(z).sum(-1))
        self.train(was)
        return tl.cat(log_w, axis=0).logsumexp(0) - float(np.log(k))  # (k, B) -> (B,)

    @tl.no_grad()
    def decode(self, z: Tensor, length: int | None = None, greedy: bool = True,
               generator=None) -> Tensor:
        """Token ids (n, length) from z (n, Z), one step at a time, state carried."""
        T = length or self.config.sample_length
        n = z.shape[0]
        state = self.to_state(z).tanh().unsqueeze(0)
        state = (state, tl.zeros_like(state))
        tok = tl.full((n, 1), self.config.bos_id, dtype=tl.int64)
        out = []
        for _ in range(T):
            inp = tl.cat([self.embedding(tok), z.unsqueeze(1)], axis=-1)  # (n, 1, E + Z)
            h, state = self.decoder(inp, state)
            logits = self.output(h[:, -1])  # (n, V)
            tok = (logits.argmax(-1) if greedy else
                   Categorical(logits=logits).sample(generator=generator)).reshape(n, 1)
            out.append(tok)
        return tl.cat(out, axis=1)

    def sample(self, n: int, generator=None, length: int | None = None) -> Tensor:
        """Sentences from the prior: z ~ N(0, I), then sampled tokens, (n, length)."""
        z = tl.randn(n, self.config.latent_features, generator=generator)
        return self.decode(z, length, greedy=False, generator=generator)

    def homotopy(self, x1: Tensor, x2: Tensor, steps: int = 5, length=None) -> Tensor:
        """Greedy decodings along z = (1 - a) mu(x1) + a mu(x2), a in [0, 1] (sec. 5.2)."""
        with tl.no_grad():
            m1, m2 = self.encode(x1.reshape(1, -1)), self.encode(x2.reshape(1, -1))
        a = tl.tensor(np.linspace(0, 1, steps), dtype=m1.dtype).reshape(-1, 1)
        return self.decode((1 - a) * m1 + a * m2, length)  # (steps, length)
