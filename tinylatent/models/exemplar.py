"""Exemplar networks (Dosovitskiy, Springenberg, Riedmiller & Brox 2014, "Discriminative
unsupervised feature learning with convolutional neural networks"; family 8 of MISSION.md).

Each of N "seed" images is its own class (a surrogate class, Sec. 2); every time it is drawn
it is transformed by a random composition of the paper's transformations (Sec. 2.1:
translation, scaling, rotation, contrast; here also a shear and pixel noise), and a ConvNet
learns to name the seed it came from:

    loss = -1/B sum_i log p(y_i | T_i(x_{y_i})),   T_i a random transformation

The network must become invariant to the transformations while still telling the seeds
apart, which is what makes its features useful. As in the paper, N is a subset (their 8,000
to 32,000 patches of STL-10; here `num_exemplars` MNIST digits).

    model = Exemplar(num_exemplars=500)
    loss, metrics = model.loss((x, ids))     # x: (B, 1, 28, 28) seeds, ids: (B,) in [0, N)
    loss, metrics = model.loss(seeds)        # all N seeds at once, ids 0..N-1
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import nn
from ..autograd import no_grad
from ..data.transforms import RandomAffine, as_numpy_generator
from ..distributions import Categorical
from ..tensor import Tensor
from .config import resolve_config
from .pretext import conv_block

__all__ = ["ExemplarConfig", "Exemplar"]


@dataclass(frozen=True)
class ExemplarConfig:
    in_channels: int = 1
    image_size: int = 28
    hidden_channels: tuple = (16, 32, 64)
    num_exemplars: int = 500         # N surrogate classes, one per seed image
    degrees: float = 20.0            # rotation ~ U(-20, 20) degrees
    translate: float = 0.15          # shift up to 15% of the side
    scale: tuple = (0.7, 1.3)
    shear: float = 10.0
    contrast: tuple = (0.5, 1.5)     # pixel values multiplied by U(contrast), then clipped
    noise: float = 0.05              # Gaussian pixel noise std
    feature_size: int = 3            # block maps are average-pooled to this, for probes


class Exemplar(nn.Module):
    """Conv blocks (conv-BN-ReLU-maxpool) -> global average pool -> N-way linear classifier."""

    def __init__(self, config: ExemplarConfig | None = None, **overrides):
        super().__init__()
        cfg = resolve_config(self, ExemplarConfig, config, overrides)
        self.config = cfg
        widths = [cfg.in_channels, *cfg.hidden_channels]
        self.blocks = nn.ModuleList([conv_block(a, b) for a, b in zip(widths, widths[1:])])
        self.pool = nn.AdaptiveAvgPool2d(cfg.feature_size)
        self.head = nn.Linear(widths[-1], cfg.num_exemplars)
        self._affine = RandomAffine(cfg.degrees, (cfg.translate, cfg.translate), cfg.scale,
                                    cfg.shear)

    def augment(self, x: Tensor, generator=None) -> Tensor:
        """T(x): affine warp, contrast, noise; a fresh draw per image (no gradient)."""
        rng = as_numpy_generator(generator)
        a = self._affine(x.detach().array, generator=rng)
        xp = x.xp
        c = xp.asarray(rng.uniform(*self.config.contrast, (len(a), 1, 1, 1)), dtype=a.dtype)
        noise = xp.asarray(rng.standard_normal(a.shape) * self.config.noise, dtype=a.dtype)
        return Tensor._make((a * c + noise).clip(0, 1))

    def _check(self, batch) -> tuple:
        """(x, ids); a plain tensor x means the seeds themselves in id order (ids 0..B-1)."""
        if isinstance(batch, Tensor):
            batch = (batch, Tensor._make(batch.xp.arange(len(batch))))
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise ValueError("Exemplar: loss takes (x, ids): seed images (B, C, H, W) and "
                             "their exemplar ids (B,)")
        x, ids = batch
        c, s = self.config.in_channels, self.config.image_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, s, s) or tuple(ids.shape) != (len(x),):
            raise ValueError(f"Exemplar: expected images (B, {c}, {s}, {s}) and ids (B,), got "
                             f"{tuple(x.shape)} and {tuple(ids.shape)}")
        return x, ids

    def forward(self, x: Tensor) -> Tensor:
        """Exemplar logits (B, N)."""
        h = x
        for block in self.blocks:
            h = block(h)
        return self.head(h.mean((-2, -1)))

    def loss(self, batch, generator=None) -> tuple:
        x, ids = self._check(batch)
        logits = self(self.augment(x, generator))
        nll = -Categorical(logits=logits).log_prob(ids).mean()
        accuracy = (logits.detach().argmax(-1) == ids).float().mean()
        return nll, {"loss": nll.detach(), "accuracy": accuracy}

    @no_grad()
    def pretext_accuracy(self, seeds: Tensor, generator=0, batch_size: int = 500) -> float:
        """Fraction of freshly transformed seeds (seeds[i] has id i) named correctly."""
        rng = as_numpy_generator(generator)
        hits = 0
        for i in range(0, len(seeds), batch_size):
            pred = self(self.augment(seeds[i:i + batch_size], rng)).argmax(-1).numpy_host()
            hits += int((pred == np.arange(i, i + len(pred))).sum())
        return hits / len(seeds)

    def block_features(self, x: Tensor) -> list:
        """Every conv block's output, average-pooled to feature_size^2 cells, flattened:
        [(B, C_k * feature_size^2)], frozen."""
        h, out = x, []
        with no_grad():
            for block in self.blocks:
                h = block(h)
                out.append(self.pool(h).reshape(len(h), -1))  # (B, C_k, s, s) -> (B, C_k s^2)
        return out

    def encode(self, x: Tensor) -> Tensor:
        return self.block_features(x)[-1]
