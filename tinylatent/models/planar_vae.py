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

import math
from dataclasses import dataclass

import tinylatent as tl
from tinylatent import nn
from tinylatent.tensor import Tensor

from .autoregressive import bernoulli_log_prob
from .flow_transforms import planar_transform

__all__ = ["PlanarVAEConfig", "PlanarVAE"]

LOG_2PI = math.log(2.0 * math.pi)


@dataclass
class PlanarVAEConfig:
    features: int = 784
    hidden: int = 400
    latent: int = 20
    num_flows: int = 8          # K planar layers on top of q_0(z|x)


class PlanarVAE(nn.Module):
    def __init__(self, cfg: PlanarVAEConfig = PlanarVAEConfig()):
        super().__init__()
        self.cfg = cfg
        d, k = cfg.latent, cfg.num_flows
        self.enc = nn.Linear(cfg.features, cfg.hidden)
        self.enc_mu = nn.Linear(cfg.hidden, d)
        self.enc_logvar = nn.Linear(cfg.hidden, d)
        self.enc_flow = nn.Linear(cfg.hidden, k * (2 * d + 1)) if k else None
        self.dec = nn.Linear(d, cfg.hidden)
        self.dec_out = nn.Linear(cfg.hidden, cfg.features)

    def encode(self, x: Tensor):
        """(mu, logvar, [(u_k, w_k, b_k)] with u, w (B, d), b (B, 1))."""
        h = tl.relu(self.enc(x))
        mu, logvar = self.enc_mu(h), self.enc_logvar(h)
        flows = []
        if self.enc_flow is not None:
            d = self.cfg.latent
            p = self.enc_flow(h).reshape(x.shape[0], self.cfg.num_flows, 2 * d + 1)
            for k in range(self.cfg.num_flows):
                flows.append((p[:, k, :d], p[:, k, d: 2 * d], p[:, k, 2 * d:]))
        return mu, logvar, flows

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
        mu, logvar, flows = self.encode(x)
        eps = tl.randn(*mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
        z0 = mu + tl.exp(0.5 * logvar) * eps
        log_q0 = -0.5 * (eps * eps + logvar + LOG_2PI).sum(axis=1)
        zk, sum_logdet = self.flow(z0, flows)
        return self.decode(zk), zk, log_q0 - sum_logdet

    def neg_elbo(self, x: Tensor, generator=None) -> Tensor:
        """Per-example -ELBO (B,), one sample."""
        logits, zk, log_qk = self(x, generator=generator)
        log_pz = -0.5 * (zk * zk + LOG_2PI).sum(axis=1)
        return log_qk - log_pz - bernoulli_log_prob(x, logits)

    def loss(self, x: Tensor) -> tuple[Tensor, dict]:
        loss = self.neg_elbo(x).mean()
        return loss, {"neg_elbo": float(loss.item())}

    @tl.no_grad()
    def sample(self, n: int, generator=None) -> Tensor:
        w = self.dec.weight
        z = tl.randn(n, self.cfg.latent, generator=generator, dtype=w.dtype, device=w.device)
        return tl.sigmoid(self.decode(z))
