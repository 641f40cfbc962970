"""CycleGAN: unpaired image-to-image translation (Zhu, Park, Isola & Efros 2017), seed 003.

Two generators G: A -> B and F: B -> A and two discriminators D_B (real b vs G(a)) and D_A
(real a vs F(b)), trained on unpaired samples a ~ p_A, b ~ p_B. The full objective (eq. 3)

    L(G, F, D_A, D_B) = L_GAN(G, D_B) + L_GAN(F, D_A) + lambda L_cyc(G, F)

with the cycle-consistency loss (eq. 2)

    L_cyc = E_a ||F(G(a)) - a||_1 + E_b ||G(F(b)) - b||_1,          lambda = 10,

and, for photo tasks (Sec. 5.2, after Taigman et al. 2017), the identity loss

    L_id = E_b ||G(b) - b||_1 + E_a ||F(a) - a||_1,       weight 0.5 lambda = 5,

which only makes sense when both domains have the same number of channels. The adversarial
terms use the least-squares GAN loss (Mao et al. 2017; Sec. 4 "Training details"):

    L_D = 1/2 (E_b (D_B(b) - 1)^2 + E_a D_B(G(a))^2)    (halved: "we divide the objective
                                                           by 2 while optimizing D")
    L_G = E_a (D_B(G(a)) - 1)^2,

averaged over the PatchGAN's grid of patch outputs. To damp oscillation D is updated on a
history of generated images (Shrivastava et al. 2017): a buffer of 50 per domain, each new
fake replacing a random stored one (which is shown to D instead) with probability 1/2.

Networks, scaled down for 28 x 28 digits (Sec. 7.2 / Johnson et al. 2016 at full size):
    G: c3s1-C, d2C (stride 2), n_blocks residual blocks of 2C, u C (transposed, stride 2),
       c3s1-out, tanh; instance norm and ReLU after every hidden conv.
    D (PatchGAN, Isola et al. 2017): C4s2 (no norm), 2C4s2 + IN, LeakyReLU 0.2, then a
       3x3 conv to one logit per patch: (B, 1, s/4, s/4).
Adam lr 2e-4, betas (0.5, 0.999). Pixels come in [0, 1] and are mapped to [-1, 1].

Training API as models/gan.py: `training_step(batch, optimizers, step)` with the dict of
`optimizers()` = {"generator": Adam(G, F), "discriminator": Adam(D_A, D_B)}: one generator
update (discriminators frozen), then one discriminator update on pooled, detached fakes.
A batch is a tuple (x_a, x_b) of unpaired images.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import nn
from ..autograd import no_grad
from ..random import Generator, rand, randint
from ..tensor import Tensor
from .config import resolve_config
from .gan import frozen

__all__ = ["CycleGANConfig", "CycleGAN", "ImagePool", "lsgan_discriminator_loss",
           "lsgan_generator_loss"]


def lsgan_discriminator_loss(real_out: Tensor, fake_out: Tensor) -> Tensor:
    """1/2 (mean (D(real) - 1)^2 + mean D(fake)^2) (Mao et al. 2017, a = 0, b = c = 1)."""
    return 0.5 * (((real_out - 1.0) ** 2).mean() + (fake_out ** 2).mean())


def lsgan_generator_loss(fake_out: Tensor) -> Tensor:
    """mean (D(G(x)) - 1)^2."""
    return ((fake_out - 1.0) ** 2).mean()


def _l1(x: Tensor, y: Tensor) -> Tensor:
    return (x - y).abs().mean()


class ImagePool(nn.Module):
    """The history of generated images (Shrivastava et al. 2017, Sec. 2.3; CycleGAN's
    image pool). Until `size` images are stored, each fake is stored and returned; then each
    fake, with probability 1/2, replaces a uniformly drawn stored image, which is returned in
    its place, else is returned itself. The store is a buffer (in state_dict, so a checkpoint
    resumes exactly); the coins come from `generator` (default: tinylatent's global RNG)."""

    def __init__(self, size: int, shape: tuple) -> None:
        super().__init__()
        if size < 0:
            raise ValueError(f"ImagePool: size must be >= 0, got {size}")
        self.size, self.shape = size, tuple(shape)
        self.register_buffer("images", Tensor(np.zeros((size, *shape), np.float32)))
        self.register_buffer("count", Tensor(np.zeros((), np.int64)))

    def forward(self, images: Tensor, generator: Generator | None = None) -> Tensor:
        images = images.detach()
        if tuple(images.shape[1:]) != self.shape:
            raise ValueError(f"ImagePool: expected images (B, {self.shape}), got "
                             f"{tuple(images.shape)}")
        if self.size == 0:
            return images
        b = len(images)
        coins = rand(b, generator=generator).numpy()                       # (B,)
        slots = randint(0, self.size, (b,), generator=generator).numpy()   # (B,)
        store, new = self.images.array, images.array
        out = new.copy()
        n = int(self.count.array)
        for i in range(b):
            if n < self.size:               # filling: keep it, show it
                store[n] = new[i]
                n += 1
            elif coins[i] < 0.5:            # show an old fake, keep the new one in its slot
                j = int(slots[i])
                out[i] = store[j]
                store[j] = new[i]
        self.count.array[...] = n
        self.images._version += 1
        return Tensor._make(out)


@dataclass(frozen=True)
class CycleGANConfig:
    in_channels: int = 1            # domain A
    out_channels: int = 1           # domain B
    image_size: int = 28            # even
    hidden_channels: int = 16       # C
    n_blocks: int = 2               # residual blocks in each generator
    negative_slope: float = 0.2     # D's LeakyReLU
    cycle_weight: float = 10.0      # lambda of eq. 3
    identity_weight: float = 5.0    # 0.5 lambda (Sec. 5.2); 0 when the channels differ
    pool_size: int = 50
    lr: float = 2e-4
    betas: tuple = (0.5, 0.999)


class _ResidualBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.InstanceNorm2d(c),
                                  nn.ReLU(), nn.Conv2d(c, c, 3, padding=1),
                                  nn.InstanceNorm2d(c))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def _generator(c_in: int, c_out: int, c: int, n_blocks: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c, 3, padding=1), nn.InstanceNorm2d(c), nn.ReLU(),      # (B, C, s, s)
        nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.InstanceNorm2d(2 * c),
        nn.ReLU(),                                                          # (B, 2C, s/2, s/2)
        *[_ResidualBlock(2 * c) for _ in range(n_blocks)],
        nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1), nn.InstanceNorm2d(c),
        nn.ReLU(),                                                          # (B, C, s, s)
        nn.Conv2d(c, c_out, 3, padding=1), nn.Tanh())                       # (B, C_out, s, s)


def patch_discriminator(c_in: int, c: int, negative_slope: float = 0.2) -> nn.Sequential:
    """PatchGAN (Isola et al. 2017): one real/fake score per overlapping patch,
    (B, c_in, s, s) -> (B, 1, s/4, s/4)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c, 4, stride=2, padding=1), nn.LeakyReLU(negative_slope),
        nn.Conv2d(c, 2 * c, 4, stride=2, padding=1), nn.InstanceNorm2d(2 * c),
        nn.LeakyReLU(negative_slope),                                   # (B, 2C, s/4, s/4)
        nn.Conv2d(2 * c, 1, 3, padding=1))                              # (B, 1, s/4, s/4)


class CycleGAN(nn.Module):
    """Unpaired translation A <-> B: `g_ab` (G), `g_ba` (F), `d_a`, `d_b`, the two pools."""

    def __init__(self, config: CycleGANConfig | None = None, **overrides) -> None:
        super().__init__()
        cfg = self.config = resolve_config(self, CycleGANConfig, config, overrides)
        if cfg.image_size % 4 or cfg.image_size < 4:
            raise ValueError(f"CycleGAN: image_size must be a positive multiple of 4 (the "
                             f"PatchGAN's two stride-2 convs), got {cfg.image_size}")
        if cfg.identity_weight and cfg.in_channels != cfg.out_channels:
            raise ValueError(f"CycleGAN: the identity loss needs in_channels == out_channels, "
                             f"got {cfg.in_channels} and {cfg.out_channels}; set "
                             f"identity_weight=0")
        c, s = cfg.hidden_channels, cfg.image_size
        self.g_ab = _generator(cfg.in_channels, cfg.out_channels, c, cfg.n_blocks)
        self.g_ba = _generator(cfg.out_channels, cfg.in_channels, c, cfg.n_blocks)
        self.d_a = patch_discriminator(cfg.in_channels, c, cfg.negative_slope)
        self.d_b = patch_discriminator(cfg.out_channels, c, cfg.negative_slope)
        self.pool_a = ImagePool(cfg.pool_size, (cfg.in_channels, s, s))
        self.pool_b = ImagePool(cfg.pool_size, (cfg.out_channels, s, s))

    # ----------------------------------------------------------------- data <-> model space
    def _images(self, x: Tensor, channels: int, name: str) -> Tensor:
        s = self.config.image_size
        if x.ndim == 2 and x.shape[1] == channels * s * s:
            x = x.reshape(len(x), channels, s, s)                 # (B, C*H*W) -> (B, C, H, W)
        if tuple(x.shape[1:]) != (channels, s, s):
            raise ValueError(f"CycleGAN: expected {name} images (B, {channels}, {s}, {s}) or "
                             f"flattened, got {tuple(x.shape)}")
        return x * 2.0 - 1.0                                      # [0, 1] -> [-1, 1]

    def _batch(self, batch) -> tuple:
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise ValueError("CycleGAN: a batch is a tuple (x_a, x_b) of unpaired images, "
                             f"got {type(batch).__name__}")
        return (self._images(batch[0], self.config.in_channels, "domain A"),
                self._images(batch[1], self.config.out_channels, "domain B"))

    # ----------------------------------------------------------------------------- losses
    def generator_loss(self, a: Tensor, b: Tensor) -> tuple:
        """(L_G, metrics, G(a), F(b)) for a, b in [-1, 1]: eq. 3 plus the identity term,
        with both discriminators frozen (they get no gradient from it)."""
        cfg = self.config
        fake_b, fake_a = self.g_ab(a), self.g_ba(b)
        with frozen(self.d_a), frozen(self.d_b):
            gan = lsgan_generator_loss(self.d_b(fake_b)) + lsgan_generator_loss(self.d_a(fake_a))
        cycle = _l1(self.g_ba(fake_b), a) + _l1(self.g_ab(fake_a), b)
        loss = gan + cfg.cycle_weight * cycle
        metrics = {"g_gan": gan.detach(), "cycle_l1": cycle.detach()}
        if cfg.identity_weight:
            identity = _l1(self.g_ab(b), b) + _l1(self.g_ba(a), a)
            loss = loss + cfg.identity_weight * identity
            metrics["identity_l1"] = identity.detach()
        metrics["g_loss"] = loss.detach()
        return loss, metrics, fake_a, fake_b

    def discriminator_loss(self, a: Tensor, b: Tensor, fake_a: Tensor, fake_b: Tensor) -> tuple:
        """(L_D_A + L_D_B, metrics) on real images and (pooled) fakes, held fixed."""
        fake_a, fake_b = fake_a.detach(), fake_b.detach()
        loss_a = lsgan_discriminator_loss(self.d_a(a), self.d_a(fake_a))
        loss_b = lsgan_discriminator_loss(self.d_b(b), self.d_b(fake_b))
        loss = loss_a + loss_b
        return loss, {"d_loss": loss.detach(), "d_a": loss_a.detach(), "d_b": loss_b.detach()}

    def loss(self, batch) -> tuple:
        """L_G + L_D on fresh fakes, each player's gradient on its own loss only (as GAN.loss):
        one step of a single optimizer on it is a simultaneous step of both players."""
        a, b = self._batch(batch)
        g_loss, metrics, fake_a, fake_b = self.generator_loss(a, b)
        d_loss, d_metrics = self.discriminator_loss(a, b, fake_a, fake_b)
        loss = g_loss + d_loss
        return loss, {"loss": loss.detach(), **metrics, **d_metrics}

    # --------------------------------------------------------------------------- training
    def optimizers(self, lr: float | None = None) -> dict:
        """{"generator": Adam(G and F), "discriminator": Adam(D_A and D_B)}."""
        from ..optim import Adam
        cfg = self.config
        lr = cfg.lr if lr is None else lr
        gen = list(self.g_ab.parameters()) + list(self.g_ba.parameters())
        disc = list(self.d_a.parameters()) + list(self.d_b.parameters())
        return {"generator": Adam(gen, lr=lr, betas=cfg.betas),
                "discriminator": Adam(disc, lr=lr, betas=cfg.betas)}

    def training_step(self, batch, optimizers: dict, step: int) -> dict:
        """One generator update, then one discriminator update on fakes drawn through the
        history pools (the order of the authors' code). Returns detached metrics; "loss" is
        L_G + L_D."""
        missing = {"discriminator", "generator"} - set(optimizers)
        if missing:
            raise KeyError(f"CycleGAN.training_step: optimizers lack {sorted(missing)}; pass "
                           f"model.optimizers()")
        a, b = self._batch(batch)
        opt_g, opt_d = optimizers["generator"], optimizers["discriminator"]
        g_loss, metrics, fake_a, fake_b = self.generator_loss(a, b)
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        d_loss, d_metrics = self.discriminator_loss(a, b, self.pool_a(fake_a),
                                                    self.pool_b(fake_b))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        metrics.update(d_metrics)
        metrics["loss"] = metrics["g_loss"] + metrics["d_loss"]
        return metrics

    # ------------------------------------------------------------------------ translation
    def _translate(self, net, x: Tensor, channels: int, name: str) -> Tensor:
        with no_grad():
            return (net(self._images(x, channels, name)) + 1.0) * 0.5   # -> [0, 1]

    def translate_ab(self, x: Tensor) -> Tensor:
        """G(x): domain A images in [0, 1] -> domain B images (B, C_B, s, s), no graph."""
        return self._translate(self.g_ab, x, self.config.in_channels, "domain A")

    def translate_ba(self, x: Tensor) -> Tensor:
        """F(x): domain B images in [0, 1] -> domain A images (B, C_A, s, s), no graph."""
        return self._translate(self.g_ba, x, self.config.out_channels, "domain B")

    def reconstruct(self, x: Tensor) -> Tensor:
        """F(G(x)) for domain A images: the cycle A -> B -> A, in [0, 1], no graph."""
        return self.translate_ba(self.translate_ab(x))
