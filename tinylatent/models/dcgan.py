"""Convolutional GANs for images: DCGAN (Radford et al. 2016) and WGAN-GP (Gulrajani et al.
2017), trained with the alternating step of models/gan.py.

DCGAN's architecture guidelines (Radford et al. 2016, Sec. 3): no pooling (strided
convolutions in D, fractional-strided = transposed convolutions in G), BatchNorm in both
networks except G's output layer and D's input layer, ReLU in G with tanh at the output,
LeakyReLU (slope 0.2) in D; Adam with lr 2e-4 and beta1 0.5; weights from N(0, 0.02).
For image_size s (a multiple of 4) and width C = hidden_channels:

    G: z (K) -> Linear -> (2C, s/4, s/4) -> BN, ReLU -> ConvT(4, 2, 1) -> (C, s/2, s/2)
             -> BN, ReLU -> ConvT(4, 2, 1) -> (in_channels, s, s) -> tanh
    D: x -> Conv(4, 2, 1) -> (C, s/2, s/2) -> LReLU -> Conv(4, 2, 1) -> (2C, s/4, s/4)
             -> BN, LReLU -> [MinibatchStd: + 1 channel] -> Flatten
             -> [MinibatchDiscrimination: + K features] -> Linear -> 1 logit

The two bracketed layers are not in Radford et al.; both are on by default (`minibatch_std`,
`minibatch_kernels`) against dropped modes. Measured on MNIST 5k (README, family 6): the plain
DCGAN under-draws digit 1 (1.3-3.7% of samples under the zoo classifier at every epoch from
10 to 40 where the data has 10%: a steady deficit, not the oscillation that averaging G's
weights, Yazici et al. 2019, smooths; that average did not lift it); with the minibatch std
(Karras et al. 2018) 3.2-5.2% over epochs 30-40; with minibatch discrimination (Salimans et
al. 2016) added, every class >= 5.5% from epoch 25 on and a lower Frechet distance.
Pixels come in [0, 1] and are mapped to [-1, 1] (tanh's range); `sample` maps back.

WGAN-GP replaces D by a critic f estimating the Wasserstein-1 distance (Arjovsky et al. 2017)
and the weight clipping by a penalty on the critic's gradient norm (Gulrajani et al. 2017,
eq. 3, Algorithm 1):

    L_critic = E f(G(z)) - E f(x) + lambda E_x^ (||grad_x^ f(x^)||_2 - 1)^2,
    x^ = eps x + (1 - eps) G(z), eps ~ U[0, 1] per example;    L_G = -E f(G(z)),

with lambda = 10, n_critic = 5, Adam lr 1e-4, betas (0, 0.9), and no BatchNorm in the critic
(Sec. 4: the penalty is per example, batch statistics would couple them). The penalty's
gradient with respect to the critic's weights is a second derivative: `gradient_penalty`
builds grad_x^ f with create_graph=True, so backward runs through the backward of conv2d,
LeakyReLU and Linear (double backward, gradchecked in tests/test_gan.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import nn, ops
from ..autograd import enable_grad, grad, no_grad
from ..random import Generator, rand
from ..tensor import Tensor
from .config import resolve_config
from .gan import AdversarialModel, frozen

__all__ = ["DCGANConfig", "DCGAN", "MinibatchStd",
           "MinibatchDiscrimination", "WGANGPConfig", "WGANGP", "gradient_penalty"]


@dataclass(frozen=True)
class DCGANConfig:
    in_channels: int = 1
    image_size: int = 28          # a multiple of 4
    hidden_channels: int = 64     # C: D has C then 2C channels, G 2C then C
    latent_features: int = 100    # Radford et al.: a 100-d uniform z; ours is N(0, I)
    negative_slope: float = 0.2
    lr: float = 2e-4
    betas: tuple = (0.5, 0.999)
    n_critic: int = 1
    # D's last feature map gets one more channel: the batch's feature standard deviation
    # (Karras et al. 2018, Sec. 3), against dropped modes; see MinibatchStd
    minibatch_std: bool = True
    # > 0: that many minibatch-discrimination kernels on D's last features (Salimans et al.
    # 2016, Sec. 3.2), each of `minibatch_kernel_dim` dimensions; see MinibatchDiscrimination
    minibatch_kernels: int = 16
    minibatch_kernel_dim: int = 4


class MinibatchStd(nn.Module):
    """Minibatch standard deviation (Karras et al. 2018, "Progressive growing of GANs",
    Sec. 3; a simplified minibatch discrimination, Salimans et al. 2016, Sec. 3.2): the
    standard deviation of every feature over the batch, averaged into one number, appended
    to each example as a constant feature map. D then sees how varied a batch is, and a
    generator that draws too few kinds of images (dropped modes) is told apart by it."""

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4:
            raise ValueError(f"MinibatchStd: expected (B, C, H, W), got {tuple(x.shape)}")
        b, _, h, w = x.shape
        var = ((x - x.mean(axis=0, keepdims=True)) ** 2).mean(axis=0)     # (C, H, W)
        s = ops.sqrt(var + self.eps).mean().reshape(1, 1, 1, 1)          # (1, 1, 1, 1)
        return ops.cat([x, s.expand(b, 1, h, w)], axis=1)                # (B, C + 1, H, W)


class MinibatchDiscrimination(nn.Module):
    """Minibatch discrimination (Salimans et al. 2016, "Improved techniques for training
    GANs", Sec. 3.2): features f(x_i) in R^A are projected by a learned tensor T to
    M_i in R^{K x D'}; with c_k(x_i, x_j) = exp(-||M_{i,k} - M_{j,k}||_1),

        o(x_i)_k = sum_j c_k(x_i, x_j)     (j over the batch, i included, as in the paper),

    and [f(x_i), o(x_i)] (A + K) goes on. o counts, per kernel, how many examples of the
    batch lie near x_i: a generator that over-draws one kind of image makes its samples
    crowded where real batches are not, which D can see."""

    def __init__(self, in_features: int, kernels: int, kernel_dim: int) -> None:
        super().__init__()
        from ..nn import init
        from ..tensor import empty
        self.kernels, self.kernel_dim = kernels, kernel_dim
        # N(0, 0.02) as DCGAN's other weights (Radford et al. 2016, Sec. 4)
        self.T = nn.Parameter(init.normal_(empty(in_features, kernels * kernel_dim), 0.0, 0.02))

    def forward(self, f: Tensor) -> Tensor:
        if f.ndim != 2 or f.shape[1] != self.T.shape[0]:
            raise ValueError(f"MinibatchDiscrimination: expected (B, {self.T.shape[0]}), "
                             f"got {tuple(f.shape)}")
        n = len(f)
        m = (f @ self.T).reshape(n, self.kernels, self.kernel_dim)          # (B, K, D')
        dist = ops.abs(m.unsqueeze(1) - m.unsqueeze(0)).sum(axis=3)        # (B, B, K)
        o = ops.exp(-dist).sum(axis=1)                                     # (B, K)
        return ops.cat([f, o], axis=1)                                     # (B, A + K)


def _generator(cfg, batch_norm: bool = True) -> nn.Sequential:
    c, s = cfg.hidden_channels, cfg.image_size // 4
    norm = (lambda n: nn.BatchNorm2d(n)) if batch_norm else (lambda n: nn.Identity())
    # no bias before a BatchNorm: its mean subtraction cancels it (so would its gradient)
    return nn.Sequential(
        nn.Linear(cfg.latent_features, 2 * c * s * s, bias=not batch_norm),
        nn.Unflatten(1, (2 * c, s, s)),                              # (B, 2C, s/4, s/4)
        norm(2 * c), nn.ReLU(),
        nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1,
                           bias=not batch_norm),                     # (B, C, s/2, s/2)
        norm(c), nn.ReLU(),
        nn.ConvTranspose2d(c, cfg.in_channels, 4, stride=2, padding=1),   # (B, C_in, s, s)
        nn.Tanh())


def _discriminator(cfg, batch_norm: bool = True) -> nn.Sequential:
    c, s = cfg.hidden_channels, cfg.image_size // 4
    layers = [
        nn.Conv2d(cfg.in_channels, c, 4, stride=2, padding=1),      # (B, C, s/2, s/2)
        nn.LeakyReLU(cfg.negative_slope),
        nn.Conv2d(c, 2 * c, 4, stride=2, padding=1, bias=not batch_norm),  # (B, 2C, s/4, s/4)
        nn.BatchNorm2d(2 * c) if batch_norm else nn.Identity(),
        nn.LeakyReLU(cfg.negative_slope)]
    features = 2 * c
    if getattr(cfg, "minibatch_std", False):
        layers.append(MinibatchStd())                                # (B, 2C + 1, s/4, s/4)
        features += 1
    layers.append(nn.Flatten())                                      # (B, features s s / 16)
    features *= s * s
    kernels = getattr(cfg, "minibatch_kernels", 0)
    if kernels:
        layers.append(MinibatchDiscrimination(features, kernels, cfg.minibatch_kernel_dim))
        features += kernels                                          # (B, features + K)
    return nn.Sequential(*layers, nn.Linear(features, 1))


def _dcgan_init(module: nn.Module) -> None:
    """Radford et al. 2016, Sec. 4: weights ~ N(0, 0.02); BatchNorm scale ~ N(1, 0.02)."""
    from ..nn import init
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            init.normal_(m.weight, 1.0, 0.02)
            init.zeros_(m.bias)


class _ImageGAN(AdversarialModel):
    def _build(self, cfg, critic_batch_norm: bool) -> None:
        if cfg.image_size % 4 or cfg.image_size < 4:
            raise ValueError(f"{type(self).__name__}: image_size must be a positive multiple "
                             f"of 4 (two stride-2 layers), got {cfg.image_size}")
        self.generator = _generator(cfg)
        self.discriminator = _discriminator(cfg, critic_batch_norm)
        _dcgan_init(self)

    def to_model_space(self, x: Tensor) -> Tensor:
        cfg = self.config
        shape = (cfg.in_channels, cfg.image_size, cfg.image_size)
        if x.ndim == 2 and x.shape[1] == cfg.in_channels * cfg.image_size ** 2:
            x = x.reshape(len(x), *shape)                 # (B, C*H*W) -> (B, C, H, W)
        if tuple(x.shape[1:]) != shape:
            raise ValueError(f"{type(self).__name__}: expected images (B, {shape[0]}, "
                             f"{shape[1]}, {shape[2]}) or flattened, got {tuple(x.shape)}")
        return x * 2.0 - 1.0                              # [0, 1] -> [-1, 1]

    def to_data_space(self, x: Tensor) -> Tensor:
        return (x + 1.0) * 0.5                            # tanh's [-1, 1] -> [0, 1]


class DCGAN(_ImageGAN):
    """Deep convolutional GAN, non-saturating loss (Radford et al. 2016; Goodfellow 2014)."""

    def __init__(self, config: DCGANConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = resolve_config(self, DCGANConfig, config, overrides)
        self._build(self.config, critic_batch_norm=True)


@dataclass(frozen=True)
class WGANGPConfig:
    in_channels: int = 1
    image_size: int = 28
    hidden_channels: int = 64
    latent_features: int = 100
    negative_slope: float = 0.2
    lr: float = 1e-4
    betas: tuple = (0.0, 0.9)
    n_critic: int = 5             # critic steps per generator step
    penalty_weight: float = 10.0  # lambda


def gradient_penalty(critic, real: Tensor, fake: Tensor, eps: Tensor | None = None,
                     generator: Generator | None = None) -> Tensor:
    """E (||grad_x^ f(x^)||_2 - 1)^2 with x^ = eps real + (1 - eps) fake (Gulrajani et al.
    2017, eq. 3), eps (B,) ~ U[0, 1] unless given. Differentiable in the critic's weights
    (create_graph=True): its backward is a double backward through the critic."""
    b = len(real)
    if tuple(fake.shape) != tuple(real.shape):
        raise ValueError(f"gradient_penalty: real {tuple(real.shape)} and fake "
                         f"{tuple(fake.shape)} differ in shape")
    if eps is None:
        eps = rand(b, dtype=real.dtype, device=real.device, generator=generator)
    eps = eps.reshape(b, *([1] * (real.ndim - 1)))                  # (B, 1, ..., 1)
    with enable_grad():      # the input gradient is needed even under no_grad (evaluation)
        x_hat = (eps * real.detach() + (1.0 - eps) * fake.detach()).requires_grad_()
        (g,) = grad(critic(x_hat).sum(), x_hat, create_graph=True)  # (B, ...): per example
    norm = ops.sqrt((g.reshape(b, -1) ** 2).sum(axis=1) + 1e-12)    # (B,)
    return ((norm - 1.0) ** 2).mean()


class WGANGP(_ImageGAN):
    """Wasserstein GAN with gradient penalty (Gulrajani et al. 2017), DCGAN networks without
    the critic's BatchNorm."""

    def __init__(self, config: WGANGPConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = resolve_config(self, WGANGPConfig, config, overrides)
        self._build(self.config, critic_batch_norm=False)

    def discriminator_loss(self, batch, generator: Generator | None = None) -> tuple:
        """(L_critic, metrics): "wasserstein" = E f(x) - E f(G(z)) (the critic's estimate
        of W1) and "gradient_penalty"."""
        real = self._real(batch)
        with no_grad():
            fake = self.generator(self.latent(len(real), generator))
        f_real, f_fake = self.discriminator(real).mean(), self.discriminator(fake).mean()
        penalty = gradient_penalty(self.discriminator, real, fake, generator=generator)
        loss = f_fake - f_real + self.config.penalty_weight * penalty
        return loss, {"d_loss": loss.detach(), "wasserstein": (f_real - f_fake).detach(),
                      "gradient_penalty": penalty.detach()}

    def generator_loss(self, n: int, generator: Generator | None = None) -> tuple:
        """L_G = -E f(G(z)); the critic's parameters get no gradient."""
        with frozen(self.discriminator):
            loss = -self.discriminator(self.generator(self.latent(n, generator))).mean()
        return loss, {"g_loss": loss.detach()}
