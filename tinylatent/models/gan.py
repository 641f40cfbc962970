"""Generative adversarial networks (Goodfellow et al. 2014), seeds 001 and 003.

A generator G maps noise z ~ p(z) = N(0, I) to data space; a discriminator D(x) (a logit)
tells data from samples. The two play the minimax game of eq. 1,

    min_G max_D  V(D, G) = E_x[log sigmoid D(x)] + E_z[log(1 - sigmoid D(G(z)))],

trained by alternating gradient steps (Algorithm 1): one on D's loss

    L_D = -E_x log sigmoid D(x) - E_z log(1 - sigmoid D(G(z)))
        = E_x softplus(-D(x)) + E_z softplus(D(G(z)))                (G(z) held fixed)

then one on the generator's *non-saturating* loss (Sec. 3: "rather than training G to
minimize log(1 - D(G(z))) we can train G to maximize log D(G(z))", which gives strong
gradients early on, when D rejects every sample)

    L_G = -E_z log sigmoid D(G(z)) = E_z softplus(-D(G(z)))           (D held fixed).

Training API (tl.train.Trainer with several optimizers): an adversarial model exposes
`discriminator_loss(batch)`, `generator_loss(n)` and `training_step(batch, optimizers, step)`,
which takes the dict {"discriminator": opt_D, "generator": opt_G} (see `optimizers()`) and
does the alternating updates itself. `loss(batch)` (the model contract) returns L_D + L_G
where L_G's gradient reaches G only: one step of a single optimizer on it is a simultaneous
gradient step of both players; its metrics hold "d_loss" and "g_loss".

`GAN` here is the MLP version (2-D toy data); `DCGAN` and `WGANGP` (models/dcgan.py) share
this class's training step with convolutional networks.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

from .. import nn, ops
from ..autograd import no_grad
from ..random import Generator, randn
from ..tensor import Tensor
from .config import resolve_config

__all__ = ["GANConfig", "GAN", "AdversarialModel", "discriminator_loss_nonsaturating",
           "generator_loss_nonsaturating", "frozen"]


def discriminator_loss_nonsaturating(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """L_D = mean softplus(-D(x)) + mean softplus(D(G(z))) (Goodfellow et al. 2014, eq. 1,
    negated): the binary cross-entropy of "real" logits against 1 and "fake" against 0."""
    return ops.softplus(-real_logits).mean() + ops.softplus(fake_logits).mean()


def generator_loss_nonsaturating(fake_logits: Tensor) -> Tensor:
    """L_G = mean softplus(-D(G(z))) = -mean log sigmoid D(G(z)) (Goodfellow et al. 2014,
    Sec. 3: the non-saturating heuristic)."""
    return ops.softplus(-fake_logits).mean()


@contextlib.contextmanager
def frozen(module: nn.Module):
    """Parameters of `module` do not require grad inside the block (they become constants of
    the graph built there), then are restored: the generator's loss must not move D."""
    params = list(module.parameters())
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad = False
    try:
        yield module
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad = flag


def _mlp(sizes, activation) -> nn.Sequential:
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class AdversarialModel(nn.Module):
    """What GAN, DCGAN and WGANGP share: `self.generator` (z -> the model's data space),
    `self.discriminator` (x -> (B, 1) logits or critic values), the data <-> model scaling,
    the alternating training step. Subclasses set `self.config` (with latent_features,
    lr, betas and n_critic) and may override `discriminator_loss` / `generator_loss`."""

    # the data batch -> the model's space (identity; DCGAN maps [0, 1] pixels to [-1, 1])
    def to_model_space(self, x: Tensor) -> Tensor:
        return x

    def to_data_space(self, x: Tensor) -> Tensor:
        return x

    def _real(self, batch) -> Tensor:
        """The images / points of a batch (x, or (x, y) from a labelled loader)."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.to_model_space(x)

    def _weight(self) -> Tensor:
        return next(iter(self.generator.parameters()))

    def latent(self, n: int, generator: Generator | None = None) -> Tensor:
        """z ~ N(0, I), (n, latent_features)."""
        w = self._weight()
        return randn((n, self.config.latent_features), dtype=w.dtype, device=w.device,
                     generator=generator)

    def discriminator_loss(self, batch, generator: Generator | None = None) -> tuple:
        """(L_D, metrics) on a real batch and as many fresh samples, G held fixed."""
        real = self._real(batch)
        with no_grad():
            fake = self.generator(self.latent(len(real), generator))
        real_logits, fake_logits = self.discriminator(real), self.discriminator(fake)
        loss = discriminator_loss_nonsaturating(real_logits, fake_logits)
        return loss, {"d_loss": loss.detach(),
                      "d_real": ops.sigmoid(real_logits.detach()).mean(),   # D's P(real)
                      "d_fake": ops.sigmoid(fake_logits.detach()).mean()}

    def generator_loss(self, n: int, generator: Generator | None = None) -> tuple:
        """(L_G, metrics) on n fresh samples; D's parameters get no gradient."""
        with frozen(self.discriminator):
            fake_logits = self.discriminator(self.generator(self.latent(n, generator)))
        loss = generator_loss_nonsaturating(fake_logits)
        return loss, {"g_loss": loss.detach()}

    def loss(self, batch) -> tuple:
        """L_D + L_G with each player's gradient on its own loss only (see the module
        docstring): (loss, metrics with "loss", "d_loss", "g_loss", ...)."""
        d_loss, metrics = self.discriminator_loss(batch)
        g_loss, g_metrics = self.generator_loss(len(self._real(batch)))
        loss = d_loss + g_loss
        return loss, {"loss": loss.detach(), **metrics, **g_metrics}

    def optimizers(self, lr: float | None = None) -> dict:
        """{"discriminator": Adam(D), "generator": Adam(G)} with the config's lr and betas."""
        from ..optim import Adam
        cfg = self.config
        lr = cfg.lr if lr is None else lr
        return {"discriminator": Adam(self.discriminator.parameters(), lr=lr, betas=cfg.betas),
                "generator": Adam(self.generator.parameters(), lr=lr, betas=cfg.betas)}

    def training_step(self, batch, optimizers: dict, step: int) -> dict:
        """One discriminator update on `batch`, then (every `n_critic`-th step, counted by
        the trainer's global `step`) one generator update with as many samples: Algorithm 1
        of Goodfellow et al. 2014 (k = 1) and of Gulrajani et al. 2017 (n_critic = 5).
        Returns detached metrics; "loss" is the discriminator's loss (+ the generator's
        when it stepped)."""
        missing = {"discriminator", "generator"} - set(optimizers)
        if missing:
            raise KeyError(f"{type(self).__name__}.training_step: optimizers lack "
                           f"{sorted(missing)}; pass model.optimizers()")
        opt_d, opt_g = optimizers["discriminator"], optimizers["generator"]
        d_loss, metrics = self.discriminator_loss(batch)
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        metrics["loss"] = metrics["d_loss"]
        if (step + 1) % self.config.n_critic == 0:
            g_loss, g_metrics = self.generator_loss(len(self._real(batch)))
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
            metrics.update(g_metrics)
        return metrics

    def sample(self, n: int, generator: Generator | None = None) -> Tensor:
        """n draws G(z), z ~ N(0, I), in data space (no graph)."""
        with no_grad():
            return self.to_data_space(self.generator(self.latent(n, generator)))

    def interpolate(self, z_a: Tensor, z_b: Tensor, steps: int = 10) -> Tensor:
        """G((1 - t) z_a + t z_b) for t = 0..1: z_a, z_b (P, K) -> (P * steps, ...) in data
        space, one row of `steps` per pair (linear, as Radford et al. 2016, Sec. 6.1)."""
        import numpy as np
        t = Tensor(np.linspace(0.0, 1.0, steps).astype(z_a.dtype), device=z_a.device)
        t = t.reshape(1, steps, 1)                                       # (1, S, 1)
        z = z_a.unsqueeze(1) * (1.0 - t) + z_b.unsqueeze(1) * t          # (P, S, K)
        with no_grad():
            out = self.generator(z.reshape(-1, z.shape[-1]))              # (P * S, ...)
            return self.to_data_space(out)


@dataclass(frozen=True)
class GANConfig:
    in_features: int = 2                      # the data dimension
    hidden_features: tuple = (128, 128)       # widths of both MLPs
    latent_features: int = 2
    negative_slope: float = 0.2               # D's LeakyReLU
    lr: float = 1e-3
    betas: tuple = (0.5, 0.999)
    n_critic: int = 1                         # D steps per G step (k of Algorithm 1)


class GAN(AdversarialModel):
    """MLP generator (ReLU) and discriminator (LeakyReLU), for 2-D toy data:
    G: latent_features -> hidden... -> in_features,  D: in_features -> hidden... -> 1."""

    def __init__(self, config: GANConfig | None = None, **overrides) -> None:
        super().__init__()
        config = resolve_config(self, GANConfig, config, overrides)
        self.config = config
        hidden = tuple(config.hidden_features) if isinstance(config.hidden_features,
                                                             (tuple, list)) \
            else (config.hidden_features,)
        self.generator = _mlp((config.latent_features, *hidden, config.in_features), nn.ReLU)
        slope = config.negative_slope
        self.discriminator = _mlp((config.in_features, *hidden, 1),
                                  lambda: nn.LeakyReLU(slope))

    def _real(self, batch) -> Tensor:
        x = super()._real(batch)
        if x.ndim != 2 or x.shape[1] != self.config.in_features:
            raise ValueError(f"GAN: expected a batch of shape (B, {self.config.in_features}), "
                             f"got {tuple(x.shape)}")
        return x

    def discriminator_logits(self, x: Tensor) -> Tensor:
        """D(x), (B,): logits of "real" (for contour pictures)."""
        return self.discriminator(x).reshape(-1)
