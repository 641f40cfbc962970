"""Variational autoencoder (Kingma & Welling 2014) with a Bernoulli decoder.

The recipe of pytorch/examples `vae/main.py`, seeds 000 and 004:

    encoder  x -> h = relu(W1 x + b1) -> (mu, logvar)          q(z|x) = N(mu, diag(exp logvar))
    decoder  z -> relu(W3 z + b3) -> logits,  x_hat = sigmoid(logits)      p(x|z) = Bern(x_hat)
    loss(x)  = BCE(x, x_hat) + KL(q(z|x) || N(0, I))   summed over pixels / latents, per image

i.e. the negative ELBO, -E_q[log p(x|z)] + KL, estimated with one reparameterized sample
z = mu + exp(logvar / 2) * eps, eps ~ N(0, I), and the KL in closed form (App. B):

    KL = 1/2 sum_j (mu_j^2 + exp(logvar_j) - 1 - logvar_j)

Against posterior collapse (seed 000): KL annealing multiplies the KL by a weight beta that
warms up linearly from 0 to 1 (Bowman et al. 2016); free bits (Kingma et al. 2016, "IAF",
eq. 15) replace each latent's batch-averaged KL by max(lambda, KL_j), so the optimizer gains
nothing by pushing a unit below lambda nats. For evaluation, `iwae_bound` gives the
importance-weighted bound of Burda et al. 2016, log p(x) >= E log 1/k sum_i p(x, z_i)/q(z_i|x),
which tightens as k grows (k=1 is the ELBO).

Pixels x are intensities in [0, 1] (not binarized, as in the PyTorch example); the BCE is then a
cross-entropy, not a log-likelihood, so its figures are only comparable with the same setup.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import nn, ops
from ..autograd import no_grad
from ..distributions import Bernoulli, Normal, kl_divergence, standard_normal
from ..random import Generator, randn
from ..tensor import Tensor, tensor
from .config import resolve_config

__all__ = ["VAEConfig", "VAE", "kl_anneal_weight"]


@dataclass(frozen=True)
class VAEConfig:
    in_features: int = 784      # 28 * 28 pixels, flattened
    hidden_features: int = 400
    latent_features: int = 20
    free_bits: float = 0.0      # lambda, nats per latent dimension (0 = off)


def kl_anneal_weight(step: int, warmup_steps: int) -> float:
    """beta = min(1, step / warmup_steps): linear KL warm-up (Bowman et al. 2016); 1 if off."""
    return 1.0 if warmup_steps <= 0 else min(1.0, step / warmup_steps)


class VAE(nn.Module):
    """Gaussian-latent, Bernoulli-decoder VAE with one hidden layer on each side."""

    def __init__(self, config: VAEConfig | None = None, **overrides) -> None:
        super().__init__()
        config = resolve_config(self, VAEConfig, config, overrides)
        self.config = config
        d, h, k = config.in_features, config.hidden_features, config.latent_features
        self.enc_hidden = nn.Linear(d, h)
        self.enc_mu = nn.Linear(h, k)
        self.enc_logvar = nn.Linear(h, k)
        self.dec_hidden = nn.Linear(k, h)
        self.dec_out = nn.Linear(h, d)

    # ---------------------------------------------------------------- the two networks
    def posterior_params(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, D) -> mu, logvar (B, K), the parameters of q(z|x)."""
        if x.ndim != 2 or x.shape[1] != self.config.in_features:
            raise ValueError(f"VAE.encode: expected x of shape (B, {self.config.in_features}), "
                             f"got {tuple(x.shape)} (flatten images first)")
        hidden = ops.relu(self.enc_hidden(x))                  # (B, H)
        return self.enc_mu(hidden), self.enc_logvar(hidden)    # (B, K), (B, K)

    def posterior(self, x: Tensor) -> Normal:
        """q(z|x) = N(mu, diag(exp logvar)), element-wise over (B, K)."""
        mu, logvar = self.posterior_params(x)
        return Normal(mu, ops.exp(0.5 * logvar), validate_args=False)   # no host sync

    def encode(self, x: Tensor) -> Tensor:
        """The representation: the posterior mean mu(x), (B, K)."""
        return self.posterior_params(x)[0]

    def decode(self, z: Tensor) -> Tensor:
        """z (..., K) -> logits (..., D) of p(x|z); sigmoid(logits) is x_hat."""
        return self.dec_out(ops.relu(self.dec_hidden(z)))

    def reparameterize(self, mu: Tensor, logvar: Tensor,
                       generator: Generator | None = None) -> Tensor:
        """z = mu + sigma * eps: a sample whose gradient flows to mu and logvar (K&W 2014)."""
        q = Normal(mu, ops.exp(0.5 * logvar), validate_args=False)
        return q.rsample(generator=generator)

    def forward(self, x: Tensor, generator: Generator | None = None):
        """-> (logits of x_hat, mu, logvar), one posterior sample per image."""
        mu, logvar = self.posterior_params(x)
        z = self.reparameterize(mu, logvar, generator)
        return self.decode(z), mu, logvar

    # ---------------------------------------------------------------- training objective
    def loss(self, x: Tensor, kl_weight: float = 1.0,
             generator: Generator | None = None) -> tuple[Tensor, dict]:
        """Negative ELBO per image (mean over the batch) -> (loss, metrics).

        loss = BCE + kl_weight * KL, where with free bits the KL term is
        sum_j max(lambda, mean_batch KL_j). metrics are detached scalar Tensors (no host
        sync): "loss" (the value optimized), "bce", "kl" and "neg_elbo" = bce + kl (the true
        bound, whatever the annealing or free bits), all per image, and "kl_weight".
        """
        logits, mu, logvar = self(x, generator)
        bce = -Bernoulli(logits=logits).log_prob(x).sum(axis=-1).mean()    # (B, D) -> ()
        q = Normal(mu, ops.exp(0.5 * logvar), validate_args=False)
        kl_per_dim = kl_divergence(q, standard_normal(mu))     # (B, K), K&W 2014 App. B
        kl = kl_per_dim.sum(axis=1).mean()
        lam = self.config.free_bits
        if lam > 0:
            # Kingma et al. 2016, eq. 15: the KL of each latent group (here: each dim),
            # averaged over the minibatch, is clamped from below at lambda
            kl_term = ops.maximum(kl_per_dim.mean(axis=0), lam).sum()
        else:
            kl_term = kl
        loss = bce + kl_weight * kl_term
        bce, kl = bce.detach(), kl.detach()
        return loss, {"loss": loss.detach(), "bce": bce, "kl": kl, "neg_elbo": bce + kl,
                      "kl_weight": tensor(float(kl_weight), dtype=loss.dtype,
                                          device=loss.device)}

    # ---------------------------------------------------------------- evaluation
    def iwae_bound(self, x: Tensor, k: int = 100, chunk: int = 100,
                   generator: Generator | None = None) -> Tensor:
        """Importance-weighted lower bound on log p(x), per image (Burda et al. 2016, eq. 8):

            L_k = log 1/k sum_i w_i,  w_i = p(x|z_i) p(z_i) / q(z_i|x),  z_i ~ q(z|x)

        L_1 is the single-sample ELBO; E[L_k] grows with k towards log p(x). The k samples
        are drawn `chunk` at a time so memory stays (chunk, B, D). Returns (B,), no grad.
        """
        if k < 1:
            raise ValueError(f"VAE.iwae_bound: k must be >= 1, got {k}")
        with no_grad():
            q = self.posterior(x)                              # (B, K)
            prior = standard_normal(q.loc)
            log_w = []
            for start in range(0, k, chunk):
                n = min(chunk, k - start)
                z = q.sample((n,), generator=generator)        # (n, B, K)
                log_px_z = Bernoulli(logits=self.decode(z)).log_prob(x).sum(axis=-1)  # (n, B)
                log_pz = prior.log_prob(z).sum(axis=-1)        # (n, B)
                log_qz = q.log_prob(z).sum(axis=-1)
                log_w.append(log_px_z + log_pz - log_qz)
            log_w = ops.cat(log_w, axis=0) if len(log_w) > 1 else log_w[0]    # (k, B)
            return ops.logsumexp(log_w, axis=0) - math.log(k)  # (B,)

    def reconstruct(self, x: Tensor) -> Tensor:
        """x_hat = sigmoid(decode(mu)): the mean reconstruction (no sampling)."""
        with no_grad():
            return ops.sigmoid(self.decode(self.encode(x)))

    def interpolate(self, x_a: Tensor, x_b: Tensor, steps: int = 10) -> Tensor:
        """Decode z = (1 - t) mu(x_a) + t mu(x_b) for t = 0..1 in `steps` steps (seed 004):
        x_a, x_b (P, D) -> (P * steps, D), one row of `steps` images per pair."""
        with no_grad():
            mu_a = self.encode(x_a)                            # (P, K)
            mu_b = self.encode(x_b)
            t = Tensor(np.linspace(0.0, 1.0, steps).astype(mu_a.dtype), device=mu_a.device)
            t = t.reshape(1, steps, 1)                         # (1, S, 1)
            z = mu_a.unsqueeze(1) * (1.0 - t) + mu_b.unsqueeze(1) * t      # (P, S, K)
            return ops.sigmoid(self.decode(z)).reshape(-1, self.config.in_features)

    def sample(self, n: int, generator: Generator | None = None, device=None) -> Tensor:
        """n images x_hat = sigmoid(decode(z)), z ~ N(0, I): pixel means, (n, D)."""
        dev = device if device is not None else self.dec_out.weight.device
        with no_grad():
            z = randn((n, self.config.latent_features), dtype=self.dec_out.weight.dtype,
                      device=dev, generator=generator)
            return ops.sigmoid(self.decode(z))

    def latent_grid(self, n: int = 20, limit: float = 0.95) -> Tensor:
        """For latent_features 2: decode an n x n grid of z at the standard-normal quantiles
        of evenly spaced probabilities in [1-limit, limit] -> (n*n, D), row-major, z1 down."""
        if self.config.latent_features != 2:
            raise ValueError(f"VAE.latent_grid needs latent_features=2, got "
                             f"{self.config.latent_features}")
        from scipy.stats import norm
        q = norm.ppf(np.linspace(1 - limit, limit, n))        # Gaussian quantiles
        z = np.stack(np.meshgrid(q, q[::-1]), axis=-1).reshape(-1, 2)   # (n*n, 2)
        dev = self.dec_out.weight.device
        z_t = Tensor(z.astype(self.dec_out.weight.dtype), device=dev)
        with no_grad():
            return ops.sigmoid(self.decode(z_t))
