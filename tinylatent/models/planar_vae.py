"""A VAE whose approximate posterior is refined by planar flows (Rezende & Mohamed 2015,
Sec. 4 and 6; seed 001):

    z_0 ~ q_0(z|x) = N(mu(x), diag(exp logvar(x))),    z_K = f_K o ... o f_1 (z_0)
    log q_K(z_K|x) = log q_0(z_0|x) - sum_k log|1 + u_hat_k . psi_k(z_{k-1})|      (eq. 13)
    -ELBO(x) = E_{q_0}[ log q_0(z_0|x) - sum_k log|det J_k| - log p(x|z_K) - log p(z_K) ]

The flow parameters (u_k, w_k, b_k) are produced by the encoder for each x (amortised), so the
posterior's shape changes from image to image. Bernoulli decoder on binarised pixels, so the
negative ELBO is an upper bound on -log p(x) in nats. K = 0 is the plain Gaussian VAE.
"""
from __future__ import annotations

from dataclasses import dataclass

import tinylatent as tl
from tinylatent import nn
from tinylatent.distributions import Bernoulli, Normal, standard_normal
from tinylatent.tensor import Tensor

from .config import resolve_config
from .flow_transforms import planar_transform

__all__ = ["PlanarVAEConfig", "PlanarVAE"]


@dataclass(frozen=True)
class PlanarVAEConfig:
    in_features: int = 784
    hidden_features: int = 400
    latent_features: int = 20
    num_flows: int = 8          # K planar layers on top of q_0(z|x)


class PlanarVAE(nn.Module):
    def __init__(self, config: PlanarVAEConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = resolve_config(self, PlanarVAEConfig, config, overrides)
        d, k, h = cfg.latent_features, cfg.num_flows, cfg.hidden_features
        self.enc = nn.Linear(cfg.in_features, h)
        self.enc_mu = nn.Linear(h, d)
        self.enc_logvar = nn.Linear(h, d)
        self.enc_flow = nn.Linear(h, k * (2 * d + 1)) if k else None
        self.dec = nn.Linear(d, h)
        self.dec_out = nn.Linear(h, cfg.in_features)

    def posterior_params(self, x: Tensor):
        """(mu, logvar, [(u_k, w_k, b_k)] with u, w (B, d), b (B, 1))."""
        h = tl.relu(self.enc(x))
        mu, logvar = self.enc_mu(h), self.enc_logvar(h)
        flows = []
        if self.enc_flow is not None:
            d, k_flows = self.config.latent_features, self.config.num_flows
            p = self.enc_flow(h).reshape(x.shape[0], k_flows, 2 * d + 1)   # (B, K, 2d + 1)
            for k in range(k_flows):
                flows.append((p[:, k, :d], p[:, k, d: 2 * d], p[:, k, 2 * d:]))
        return mu, logvar, flows

    def encode(self, x: Tensor) -> Tensor:
        """The representation: the mean of q_0(z|x), (B, d)."""
        return self.posterior_params(x)[0]

    def decode(self, z: Tensor) -> Tensor:
        """Bernoulli logits of p(x|z)."""
        return self.dec_out(tl.relu(self.dec(z)))

    @staticmethod
    def flow(z0: Tensor, flows) -> tuple[Tensor, Tensor]:
        """z_K and sum_k log|det J_k| along the chain."""
        z, total = z0, tl.zeros(z0.shape[0], dtype=z0.dtype, device=z0.device)
        for u, w, b in flows:
            z, logabsdet = planar_transform(z, u, w, b)
            total = total + logabsdet
        return z, total

    def forward(self, x: Tensor, generator=None):
        """One reparameterised sample: (logits, z_K, log q_K(z_K|x))."""
        mu, logvar, flows = self.posterior_params(x)
        q0 = Normal(mu, tl.exp(0.5 * logvar), validate_args=False)
        z0 = q0.rsample(generator=generator)                      # (B, d)
        log_q0 = q0.log_prob(z0).sum(axis=1)
        zk, sum_logdet = self.flow(z0, flows)
        return self.decode(zk), zk, log_q0 - sum_logdet

    def neg_elbo(self, x: Tensor, generator=None) -> Tensor:
        """Per-example -ELBO (B,), one sample."""
        logits, zk, log_qk = self(x, generator=generator)
        log_pz = standard_normal(zk).log_prob(zk).sum(axis=1)
        log_px_z = Bernoulli(logits=logits).log_prob(x).sum(axis=1)
        return log_qk - log_pz - log_px_z

    def loss(self, x: Tensor) -> tuple[Tensor, dict]:
        loss = self.neg_elbo(x).mean()
        return loss, {"loss": loss.detach(), "neg_elbo": loss.detach()}

    @tl.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """sigmoid(decode(z_K)) with z_0 = mu(x): the flowed posterior mean, no sampling."""
        mu, _, flows = self.posterior_params(x)
        return tl.sigmoid(self.decode(self.flow(mu, flows)[0]))

    @tl.no_grad()
    def sample(self, n: int, generator=None) -> Tensor:
        w = self.dec.weight
        z = tl.randn(n, self.config.latent_features, generator=generator, dtype=w.dtype,
                     device=w.device)
        return tl.sigmoid(self.decode(z))
