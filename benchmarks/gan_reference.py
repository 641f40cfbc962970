"""DCGAN and WGAN-GP training steps (tinylatent/models/dcgan.py) next to PyTorch twins of the
same recipe, for benchmarks/test_bench_gan.py.

The twins are built from the same layers in the same order (so their state_dict names match
tinylatent's), start from tinylatent's weights, and take their noise (z, and WGAN-GP's
mixing weights eps) from a replay of tinylatent's global random stream: with the same batch,
one `step` on each side must give the same losses and the same updated weights to float32
rounding. `step` is model.training_step(batch, model.optimizers(), step) on the tinylatent
side and the same updates (Goodfellow et al. 2014 Algorithm 1; Gulrajani et al. 2017
Algorithm 1) written with torch.autograd on the PyTorch side.
"""
from __future__ import annotations

import numpy as np

import tinylatent as tl
from tinylatent.models import DCGAN, WGANGP

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError:  # pragma: no cover - the benchmark skips without PyTorch
    torch = None


def torch_networks(cfg, critic_batch_norm: bool):
    """(generator, discriminator) as torch.nn.Sequential, layer for layer as dcgan.py."""
    c, s = cfg.hidden_channels, cfg.image_size // 4
    g = nn.Sequential(
        nn.Linear(cfg.latent_features, 2 * c * s * s, bias=False),
        nn.Unflatten(1, (2 * c, s, s)),
        nn.BatchNorm2d(2 * c), nn.ReLU(),
        nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(c),
        nn.ReLU(),
        nn.ConvTranspose2d(c, cfg.in_channels, 4, stride=2, padding=1), nn.Tanh())
    mbstd = getattr(cfg, "minibatch_std", False)
    d = nn.Sequential(
        nn.Conv2d(cfg.in_channels, c, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(c, 2 * c, 4, stride=2, padding=1, bias=not critic_batch_norm),
        nn.BatchNorm2d(2 * c) if critic_batch_norm else nn.Identity(), nn.LeakyReLU(0.2),
        *([TorchMinibatchStd()] if mbstd else []),
        nn.Flatten())
    features, kernels = (2 * c + mbstd) * s * s, getattr(cfg, "minibatch_kernels", 0)
    if kernels:
        d.append(TorchMinibatchDiscrimination(features, kernels, cfg.minibatch_kernel_dim))
    d.append(nn.Linear(features + kernels, 1))
    return g, d


class TorchMinibatchStd(nn.Module if torch is not None else object):
    """dcgan.MinibatchStd (Karras et al. 2018): the batch's mean feature std as one more
    channel."""

    def forward(self, x):
        s = torch.sqrt(x.var(0, unbiased=False) + 1e-8).mean()
        return torch.cat([x, s.expand(len(x), 1, *x.shape[2:])], 1)


class TorchMinibatchDiscrimination(nn.Module if torch is not None else object):
    """dcgan.MinibatchDiscrimination (Salimans et al. 2016, Sec. 3.2)."""

    def __init__(self, in_features, kernels, kernel_dim):
        super().__init__()
        self.kernels, self.kernel_dim = kernels, kernel_dim
        self.T = nn.Parameter(torch.zeros(in_features, kernels * kernel_dim))

    def forward(self, f):
        m = (f @ self.T).reshape(len(f), self.kernels, self.kernel_dim)
        o = torch.exp(-(m.unsqueeze(1) - m.unsqueeze(0)).abs().sum(3)).sum(1)
        return torch.cat([f, o], 1)


class TorchGAN(nn.Module if torch is not None else object):
    """The PyTorch twin of a DCGAN or WGANGP with the same weights."""

    def __init__(self, model):
        super().__init__()
        self.wgan = isinstance(model, WGANGP)
        self.cfg = model.config
        self.generator, self.discriminator = torch_networks(self.cfg, not self.wgan)
        ours = model.state_dict()
        with torch.no_grad():
            for name, t in self.state_dict().items():
                if name in ours:
                    t.copy_(torch.from_numpy(np.asarray(ours[name].numpy())).to(t.dtype))
        betas = tuple(self.cfg.betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), self.cfg.lr, betas)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), self.cfg.lr, betas)

    def step(self, x, z_d, z_g, eps=None, generator_step=True) -> tuple:
        """One critic/discriminator update on x (in [0, 1]) with noise z_d (and eps), then
        with generator_step one generator update with z_g: (d_loss, g_loss or None)."""
        real = x * 2 - 1
        with torch.no_grad():
            fake = self.generator(z_d)
        if self.wgan:
            f_real, f_fake = self.discriminator(real).mean(), self.discriminator(fake).mean()
            e = eps.reshape(-1, 1, 1, 1)
            x_hat = (e * real + (1 - e) * fake).requires_grad_()
            (g,) = torch.autograd.grad(self.discriminator(x_hat).sum(), x_hat,
                                       create_graph=True)
            norm = torch.sqrt((g.reshape(len(g), -1) ** 2).sum(1) + 1e-12)
            d_loss = f_fake - f_real + self.cfg.penalty_weight * ((norm - 1) ** 2).mean()
        else:
            d_loss = F.softplus(-self.discriminator(real)).mean() + \
                F.softplus(self.discriminator(fake)).mean()
        self.opt_d.zero_grad()
        d_loss.backward()
        self.opt_d.step()
        if not generator_step:
            return float(d_loss.detach()), None
        for p in self.discriminator.parameters():
            p.requires_grad_(False)
        out = self.discriminator(self.generator(z_g))
        for p in self.discriminator.parameters():
            p.requires_grad_(True)
        g_loss = -out.mean() if self.wgan else F.softplus(-out).mean()
        self.opt_g.zero_grad()
        g_loss.backward()
        self.opt_g.step()
        return float(d_loss.detach()), float(g_loss.detach())


class SideBySide:
    """One tinylatent model (DCGAN or WGANGP) and its twin; `step(x)` trains both on x."""

    def __init__(self, kind: str = "dcgan", seed: int = 0, **config):
        tl.manual_seed(seed)
        torch.manual_seed(seed)
        self.model = (DCGAN if kind == "dcgan" else WGANGP)(**config)
        self.model.train()
        self.twin = TorchGAN(self.model)
        self.twin.train()
        self.opts = self.model.optimizers()
        self.n = 0

    def tl_step(self, x, step=None):
        return self.model.training_step(x, self.opts, self.n if step is None else step)

    def step(self, x_np: np.ndarray) -> tuple:
        """Both sides on the same batch and noise: ((tl d, tl g), (torch d, torch g))."""
        cfg, b = self.model.config, len(x_np)
        g_step = (self.n + 1) % cfg.n_critic == 0
        state = tl.get_rng_state()
        metrics = self.tl_step(tl.tensor(x_np))
        after = tl.get_rng_state()
        tl.set_rng_state(state)      # replay the draws training_step made, in its order
        z_d = tl.randn(b, cfg.latent_features).numpy()
        eps = tl.rand(b).numpy() if self.twin.wgan else None
        z_g = tl.randn(b, cfg.latent_features).numpy() if g_step else None
        tl.set_rng_state(after)
        t = lambda a: None if a is None else torch.from_numpy(a)   # noqa: E731
        pt = self.twin.step(torch.from_numpy(x_np), t(z_d), t(z_g), t(eps), g_step)
        self.n += 1
        ours = (float(metrics["d_loss"].item()),
                float(metrics["g_loss"].item()) if "g_loss" in metrics else None)
        return ours, pt

    def weight_difference(self) -> float:
        """||w_tl - w_torch|| / ||w_torch|| over all parameters together. (Per tensor, the
        BatchNorm shifts drift most: they start at 0 and Adam turns their tiny, rounding-
        sized early gradients into lr-sized steps; measured 2% of their own norm after 12
        DCGAN steps, 1e-6 for WGAN-GP, whose critic has no BatchNorm.)"""
        ours = self.model.state_dict()
        diff = total = 0.0
        for name, p in self.twin.named_parameters():
            a, b = np.asarray(ours[name].numpy(), np.float64), p.detach().double().numpy()
            diff, total = diff + ((a - b) ** 2).sum(), total + (b ** 2).sum()
        return float(np.sqrt(diff / total))
