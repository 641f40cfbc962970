"""Normalizing flows (seed 001; seed 003 for MAF): a `Flow` is a base distribution plus an
invertible transform f from data to noise, with the change-of-variables density

    log p(x) = log p_Z(f(x)) + log|det J_f(x)|,        sampling: x = f^{-1}(z), z ~ p_Z.

Builders for the models of the course: planar, RealNVP and MAF flows on 2-D data;
RealNVP (Dinh et al. 2017), Glow (Kingma & Dhariwal 2018) and MAF (Papamakarios et al.
2017) on dequantised MNIST in bits/dim. The transforms are in `flow_transforms.py` and
`flow_image_transforms.py`; the planar-flow VAE posterior in `planar_vae.py`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import tinylatent as tl
from tinylatent import nn
from tinylatent.distributions import standard_normal
from tinylatent.tensor import Tensor

from .config import resolve_config

from .flow_image_transforms import (ActNorm, InvertibleConv1x1, LogitTransform,
                                    MultiScaleTransform, Squeeze)
from .spline_transforms import RQSplineCoupling
from .flow_transforms import (AffineCoupling, CompositeTransform, MaskedAffineAutoregressive,
                              PlanarFlow, ReversePermutation, Transform, alternating_mask,
                              channel_mask, checkerboard_mask)

__all__ = ["StandardNormal", "Flow", "MLP", "ConvNet", "planar_flow_2d", "realnvp_2d",
           "maf_2d", "spline_2d", "ImageFlowConfig", "realnvp_mnist", "glow_mnist", "maf_mnist",
           "bits_per_dim"]


class StandardNormal(nn.Module):
    """N(0, I) over every non-batch axis of shape `shape`."""

    def __init__(self, shape):
        super().__init__()
        self.shape = (shape,) if isinstance(shape, int) else tuple(shape)

    def log_prob(self, z: Tensor) -> Tensor:
        """sum of log N(z_i; 0, 1) over every non-batch axis: (B, ...) -> (B,)."""
        return standard_normal(z).log_prob(z).reshape(z.shape[0], -1).sum(axis=1)

    def sample(self, n: int, generator=None, dtype=None, device=None) -> Tensor:
        return tl.randn(n, *self.shape, generator=generator, dtype=dtype, device=device)


class Flow(nn.Module):
    """Flow(base_distribution, transform): log_prob(x), sample(n), forward, inverse."""

    def __init__(self, base_distribution, transform: Transform):
        super().__init__()
        self.base = base_distribution
        self.transform = transform

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Data to noise: (z, log|det dz/dx|)."""
        return self.transform(x)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self.transform.inverse(z)

    def log_prob(self, x: Tensor) -> Tensor:
        z, logabsdet = self.transform(x)
        return self.base.log_prob(z) + logabsdet

    def sample(self, n: int, generator=None) -> Tensor:
        p = next(iter(self.parameters()), None)       # sample in the model's dtype / device
        dtype, device = (p.dtype, p.device) if p is not None else (None, None)
        z = self.base.sample(n, generator=generator, dtype=dtype, device=device)
        x, _ = self.transform.inverse(z)
        return x

    def loss(self, x: Tensor) -> tuple[Tensor, dict]:
        """Mean negative log-likelihood in nats; metrics are detached Tensors."""
        nll = -self.log_prob(x).mean()
        return nll, {"loss": nll.detach(), "nll": nll.detach()}


# ----------------------------------------------------------------------------- conditioners
class MLP(nn.Module):
    """in -> hidden (ReLU) x num_hidden -> out; the last layer starts at zero so that a
    coupling layer starts at the identity (Kingma & Dhariwal 2018, Sec. 3.3)."""

    def __init__(self, in_features: int, hidden: int, out_features: int, num_hidden: int = 2):
        super().__init__()
        sizes = [in_features] + [hidden] * num_hidden
        self.layers = nn.ModuleList([nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])])
        self.out = nn.Linear(sizes[-1], out_features)
        with tl.no_grad():
            self.out.weight.zero_()
            self.out.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = tl.relu(layer(x))
        return self.out(x)


class ConvNet(nn.Module):
    """Glow's coupling network: 3x3 conv, ReLU, 1x1 conv, ReLU, zero-initialised 3x3 conv."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, hidden, 1)
        self.conv3 = nn.Conv2d(hidden, out_channels, 3, padding=1)
        with tl.no_grad():
            self.conv3.weight.zero_()
            self.conv3.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        return self.conv3(tl.relu(self.conv2(tl.relu(self.conv1(x)))))


# ----------------------------------------------------------------------------- 2-D flows
def planar_flow_2d(num_layers: int = 16, generator=None) -> Flow:
    """ActNorm then K planar layers on R^2 (Rezende & Mohamed 2015) in the data-to-noise
    direction, trained by maximum likelihood; ActNorm supplies the global scale that planar
    layers (rank-one perturbations of the identity) lack."""
    layers = [ActNorm(2)] + [PlanarFlow(2, generator=generator) for _ in range(num_layers)]
    return Flow(StandardNormal(2), CompositeTransform(layers))


def realnvp_2d(num_layers: int = 8, hidden_features: int = 64) -> Flow:
    """Alternating-mask affine couplings with MLP conditioners on R^2."""
    layers = [AffineCoupling(alternating_mask(2, i % 2), MLP(2, hidden_features, 4))
              for i in range(num_layers)]
    return Flow(StandardNormal(2), CompositeTransform(layers))


def maf_2d(num_layers: int = 8, hidden_features: int = 64) -> Flow:
    """MAF layers with the ordering reversed between layers (Papamakarios et al. 2017).

    In 2-D a MAF layer is an affine coupling (x_2 given x_1) plus an affine map of x_1, so it
    needs RealNVP's depth (8) and bounded log-scales, alpha = scale * tanh(raw): with 5 layers
    and the 3 tanh(raw / 3) clamp it stays 0.3-0.4 nats short of a KDE on moons after 400
    steps, with these within 0.1-0.2 nats (3 seeds)."""
    layers = []
    for i in range(num_layers):
        layers += [MaskedAffineAutoregressive(2, hidden_features, 2, seed=i,
                                              learnable_scale=True),
                   ReversePermutation(2)]
    return Flow(StandardNormal(2), CompositeTransform(layers))


def spline_2d(num_layers: int = 4, hidden_features: int = 64, num_bins: int = 8,
              tail_bound: float = 4.0) -> Flow:
    """Rational-quadratic neural spline flow on R^2 (Durkan et al. 2019): alternating-mask
    RQ-spline couplings, K bins on [-B, B], identity outside; each layer is far more flexible
    than an affine one, so fewer are needed."""
    layers = [RQSplineCoupling(alternating_mask(2, i % 2),
                               MLP(2, hidden_features, 2 * (3 * num_bins - 1)),
                               num_bins, tail_bound, hidden_features)
              for i in range(num_layers)]
    return Flow(StandardNormal(2), CompositeTransform(layers))


# ----------------------------------------------------------------------------- MNIST flows
@dataclass(frozen=True)
class ImageFlowConfig:
    in_channels: int = 1
    image_size: int = 28
    hidden_features: int = 32   # channels of the coupling nets (units of MAF's MADE)
    steps: int = 4              # couplings (RealNVP) / flow steps (Glow) / layers (MAF) a level
    levels: int = 2
    alpha: float = 1e-6         # logit transform squashing (Dinh et al. 2017, Sec. 4.1)
    lu: bool = True             # Glow: LU-parameterised 1x1 convolutions


def _coupling(mask: np.ndarray, channels: int, hidden: int) -> AffineCoupling:
    return AffineCoupling(mask, ConvNet(channels, hidden, 2 * channels))


def _image_config(name: str, config, overrides, **defaults) -> ImageFlowConfig:
    """The builder's config: ImageFlowConfig(**defaults) unless one is given, then overrides."""
    return resolve_config(name, ImageFlowConfig, config or ImageFlowConfig(**defaults),
                          overrides)


def realnvp_mnist(config: ImageFlowConfig | None = None, **overrides) -> Flow:
    """RealNVP (Dinh et al. 2017, Sec. 3.6): per level, checkerboard couplings, squeeze,
    channel couplings, factor out half; the last level has checkerboard couplings only.
    RealNVP's batch-normalisation flow layers (Sec. 3.7) are replaced by ActNorm, their
    data-initialised, batch-independent successor (Kingma & Dhariwal 2018, Sec. 3.1)."""
    cfg = _image_config("realnvp_mnist", config, overrides)
    c, s, hidden = cfg.in_channels, cfg.image_size, cfg.hidden_features
    levels = []
    for lvl in range(cfg.levels):
        last = lvl == cfg.levels - 1
        steps = []
        for i in range(cfg.steps):
            steps += [ActNorm(c), _coupling(checkerboard_mask(s, s, i % 2), c, hidden)]
        if not last:
            steps.append(Squeeze())
            for i in range(cfg.steps):
                steps += [ActNorm(4 * c), _coupling(channel_mask(4 * c, i % 2), 4 * c, hidden)]
            c, s = 4 * c - 2 * c, s // 2
        levels.append(CompositeTransform(steps))
    shape = (cfg.in_channels, cfg.image_size, cfg.image_size)
    transform = CompositeTransform([LogitTransform(cfg.alpha), MultiScaleTransform(levels,
                                                                                   shape)])
    return Flow(StandardNormal(transform.output_shape(shape)), transform)


def glow_mnist(config: ImageFlowConfig | None = None, **overrides) -> Flow:
    """Glow (Kingma & Dhariwal 2018, Fig. 2): per level squeeze, then `steps` x (actnorm,
    invertible 1x1 conv, affine coupling), then factor out half (not after the last)."""
    cfg = _image_config("glow_mnist", config, overrides)
    c, s = cfg.in_channels, cfg.image_size
    levels = []
    for lvl in range(cfg.levels):
        c, s = 4 * c, s // 2
        steps = [Squeeze()]
        for i in range(cfg.steps):
            steps += [ActNorm(c), InvertibleConv1x1(c, lu=cfg.lu, seed=100 * lvl + i),
                      _coupling(channel_mask(c, i % 2), c, cfg.hidden_features)]
        levels.append(CompositeTransform(steps))
        c = c - c // 2
    shape = (cfg.in_channels, cfg.image_size, cfg.image_size)
    transform = CompositeTransform([LogitTransform(cfg.alpha), MultiScaleTransform(levels,
                                                                                   shape)])
    return Flow(StandardNormal(transform.output_shape(shape)), transform)


def _zeros(x: Tensor) -> Tensor:
    return tl.zeros(x.shape[0], dtype=x.dtype, device=x.device)


class _Flatten(Transform):
    """(B, C, H, W) <-> (B, C H W); log|det| = 0."""

    def __init__(self, shape_in: tuple):
        super().__init__()
        self.shape_in = tuple(shape_in)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x.reshape(x.shape[0], -1), _zeros(x)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return z.reshape((z.shape[0],) + self.shape_in), _zeros(z)

    def output_shape(self, shape: tuple) -> tuple:
        return (int(np.prod(shape)),)


def maf_mnist(config: ImageFlowConfig | None = None, **overrides) -> Flow:
    """MAF on flattened logit pixels: `steps` MADE-affine layers, orderings reversed in
    between (Papamakarios et al. 2017, Sec. 4). Defaults: hidden_features=512, steps=5."""
    cfg = _image_config("maf_mnist", config, overrides, hidden_features=512, steps=5)
    shape = (cfg.in_channels, cfg.image_size, cfg.image_size)
    d = int(np.prod(shape))
    layers: list = [LogitTransform(cfg.alpha), _Flatten(shape)]
    for i in range(cfg.steps):   # ActNorm in place of MAF's batch normalisation (Sec. 3.4)
        layers += [ActNorm(d), MaskedAffineAutoregressive(d, cfg.hidden_features, 1, seed=i),
                   ReversePermutation(d)]
    return Flow(StandardNormal(d), CompositeTransform(layers))


# ----------------------------------------------------------------------------- evaluation
def bits_per_dim(log_prob_unit: Tensor | float, dims: int) -> float:
    """Bits per dimension of 8-bit data from the density on [0, 1]^D of the dequantised
    data: log p(pixels) >= log p_unit(x) - D log 256 (Theis et al. 2016), so
    bits/dim = -(log p_unit - D log 256) / (D log 2)."""
    lp = float(log_prob_unit.mean().item()) if isinstance(log_prob_unit, Tensor) \
        else float(log_prob_unit)
    return -(lp - dims * math.log(256.0)) / (dims * math.log(2.0))
