"""SimCLR (Chen, Kornblith, Norouzi & Hinton 2020, "A Simple Framework for Contrastive
Learning of Visual Representations").

For a minibatch of N images, two random augmentations t, t' ~ T give 2N views;

    h = f(x~)            the encoder (here a small conv net), the representation kept
    z = g(h) = W2 relu(W1 h)                 the projection head (sec. 2.1), used only in the loss
    l(i, j) = -log exp(sim(z_i, z_j)/tau) / sum_{k != i} exp(sim(z_i, z_k)/tau)   (eq. 1)

with sim the cosine similarity and the loss ("NT-Xent") averaged over all 2N positive pairs
(i, j) and (j, i): `tl.ops.contrastive.nt_xent`, which masks sim(z_i, z_i) so that a view is
never its own negative and its one positive is its other view. The augmentations are the
paper's (App. A): random resized crop, horizontal flip and colour distortion, which on grey
images is its brightness and contrast part (hue and saturation do not apply), plus a little
Gaussian noise (tl.data.transforms). The encoder is a conv net with BatchNorm (as the
paper's ResNet) ending in a 512-wide h; the paper's h is the pooled ResNet output.

Evaluation (sec. 4.1, "linear evaluation protocol"): the encoder is frozen and a linear
classifier is trained on h (and, for comparison, on g(h): the paper's Fig. 8 finds the
pre-head h better); `encode` returns h, `project` returns z.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import nn, ops
from ..data import transforms as T
from ..ops.contrastive import nt_xent
from ..tensor import Tensor
from .config import resolve_config

__all__ = ["SimCLR", "SimCLRConfig", "conv_trunk", "simclr_augmentation", "PROBE_L2"]

# The linear probe's L2 grid, chosen on a validation 10% of all the training rows
PROBE_L2 = (1e-4, 1e-3, 1e-2)
PROBE_SPLIT = {"val_fraction": 0.1, "max_fit": None}


def conv_trunk(in_channels: int, image_size, hidden_channels: tuple,
               batch_norm: bool = False) -> tuple:
    """Stride-2 3x3 conv (+ BatchNorm2d) + ReLU layers then Flatten -> (nn.Sequential,
    flattened width); image_size is S (square) or (H, W) (e.g. CMC's half-image views)."""
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    layers, c = [], in_channels
    for width in hidden_channels:
        layers += [nn.Conv2d(c, width, 3, stride=2, padding=1)]
        layers += [nn.BatchNorm2d(width)] if batch_norm else []
        layers += [nn.ReLU()]
        c, h, w = width, (h - 1) // 2 + 1, (w - 1) // 2 + 1    # stride 2, padding 1
    return nn.Sequential(*layers, nn.Flatten()), c * h * w


def simclr_augmentation(image_size: int, crop_scale: float = 0.4, degrees: float = 10.0,
                        noise: float = 0.05, flip: bool = False,
                        jitter: float = 0.0) -> T.Compose:
    """The view distribution T: random resized crop (sec. 3, the strongest single
    augmentation), then optionally a horizontal flip (the paper's, label-preserving for
    clothes and shoes), brightness and contrast jitter of strength `jitter` (the grey half of
    the paper's colour distortion, App. A: 0.8 * s with s = 0.5 gives 0.4), a small rotation
    (degrees > 0) and Gaussian noise."""
    steps = [T.RandomResizedCrop(image_size, scale=(crop_scale, 1.0))]
    steps += [T.RandomHorizontalFlip()] if flip else []
    steps += [T.ColorJitter(brightness=jitter, contrast=jitter)] if jitter else []
    steps += [T.RandomRotation(degrees)] if degrees else []
    return T.Compose(steps + [T.GaussianNoise(noise)])


@dataclass(frozen=True)
class SimCLRConfig:
    in_channels: int = 1
    image_size: int = 28
    hidden_channels: tuple = (32, 64)
    hidden_features: int = 512     # width of the representation h = f(x)
    latent_features: int = 64      # width of the projection z = g(h)
    temperature: float = 0.5       # tau of NT-Xent (the paper's Table 5 range: 0.1 - 1)
    crop_scale: float = 0.3        # RandomResizedCrop keeps 30% - 100% of the area
    batch_norm: bool = True        # after every conv and the Linear to h, as the paper's ResNet
    flip: bool = True              # random horizontal flip (off for digits: a mirrored 2 is no 2)
    jitter: float = 0.4            # brightness and contrast factors ~ U(0.6, 1.4)
    degrees: float = 0.0           # random rotation (not in the paper's default T)


class SimCLR(nn.Module):
    """Conv encoder f, two-layer projection head g, NT-Xent on two augmented views."""

    def __init__(self, config: SimCLRConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = cfg = resolve_config(self, SimCLRConfig, config, overrides)
        if not cfg.temperature > 0:
            raise ValueError(f"SimCLR: temperature must be > 0, got {cfg.temperature}")
        trunk, width = conv_trunk(cfg.in_channels, cfg.image_size, cfg.hidden_channels,
                                  cfg.batch_norm)
        norm = [nn.BatchNorm1d(cfg.hidden_features)] if cfg.batch_norm else []
        self.encoder = nn.Sequential(trunk, nn.Linear(width, cfg.hidden_features), *norm,
                                     nn.ReLU())
        self.head = nn.Sequential(nn.Linear(cfg.hidden_features, cfg.hidden_features),
                                  nn.ReLU(), nn.Linear(cfg.hidden_features,
                                                       cfg.latent_features))
        self.augment = simclr_augmentation(cfg.image_size, cfg.crop_scale, cfg.degrees,
                                           flip=cfg.flip, jitter=cfg.jitter)

    def _images(self, x: Tensor) -> Tensor:
        c, s = self.config.in_channels, self.config.image_size
        if x.ndim == 2 and x.shape[1] == c * s * s:
            x = x.reshape(x.shape[0], c, s, s)                   # (B, C, S, S)
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, s, s):
            raise ValueError(f"SimCLR: expected images (B, {c}, {s}, {s}), got "
                             f"{tuple(x.shape)}")
        return x

    def encode(self, x: Tensor) -> Tensor:
        """h = f(x), (B, hidden_features): the representation evaluated with frozen weights."""
        return self.encoder(self._images(x))

    def project(self, x: Tensor) -> Tensor:
        """z = g(f(x)), (B, latent_features): the space NT-Xent is computed in."""
        return self.head(self.encode(x))

    forward = project

    def views(self, x: Tensor, generator=None) -> tuple[Tensor, Tensor]:
        """Two independent augmentations of every image (no gradient: data preparation)."""
        x = self._images(x).detach()
        return self.augment(x, generator=generator), self.augment(x, generator=generator)

    def init_features(self, x, xt) -> dict:
        """The baselines "random-init h": this (untrained) encoder's frozen h of x and xt,
        with BatchNorm's running statistics at their initial (0, 1) and, so that the baseline
        is not handicapped by them, re-estimated on x (train-mode passes of a copy, no
        weight changes: a cumulative average over batches of 1,000)."""
        import copy

        from ..autograd import no_grad
        from ..eval import frozen_features
        out = {"random-init h": tuple(frozen_features(self.encode, v, module=self)
                                      for v in (x, xt))}
        if self.config.batch_norm:
            twin = copy.deepcopy(self).train()
            for m in twin.modules():
                if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                    m.reset_running_stats()
                    m.momentum = None
            with no_grad():
                for i in range(0, len(x), 1000):
                    twin.encode(Tensor._make(np.asarray(x[i:i + 1000])))
            out["random-init h, BN fitted"] = tuple(
                frozen_features(twin.encode, v, module=twin) for v in (x, xt))
        return out

    def evaluate(self, x, y, xt, yt, init: dict | None = None) -> dict:
        """(linear probe, 20-NN) test accuracy on the FROZEN h = f(x) and z = g(h) of train
        images x and test images xt, next to raw pixels and `init` = {name: (train, test)}
        features of the same encoder at random init when given (`init_features`; sec. 4.1,
        Fig. 8)."""
        from ..eval import frozen_features, knn_accuracy, linear_probe
        feats = lambda fn: tuple(frozen_features(fn, v, module=self)      # noqa: E731
                                 for v in (x, xt))
        named = {"raw pixels": (x.reshape(len(x), -1), xt.reshape(len(xt), -1))}
        named.update(init or {})
        named.update({"h = f(x)": feats(self.encode), "z = g(h)": feats(self.project)})
        # the same probe for every row: standardised features, L2 chosen on a held-out 10%
        return {k: (linear_probe(a, y, b, yt, l2=PROBE_L2, **PROBE_SPLIT),
                    knn_accuracy(a, y, b, yt, k=20)) for k, (a, b) in named.items()}

    def view_similarity(self, x, generator=None):
        """cos(z_i, z'_j) (N, N) of two views of images x (N, C, S, S), frozen encoder."""
        from ..eval import frozen_features
        v1, v2 = self.views(Tensor._make(x), generator=generator)
        z1, z2 = (frozen_features(self.project, v.numpy(), module=self) for v in (v1, v2))
        z1, z2 = (z / np.linalg.norm(z, axis=1, keepdims=True) for z in (z1, z2))
        return z1 @ z2.T

    def loss(self, batch, generator=None) -> tuple[Tensor, dict]:
        """NT-Xent (eq. 1) of two views of the batch; labels, if given, are ignored."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        v1, v2 = self.views(x, generator)
        n = v1.shape[0]
        z = self.project(ops.cat([v1, v2], axis=0))             # (2N, latent): one pass
        loss = nt_xent(z[:n], z[n:], self.config.temperature)
        return loss, {"loss": loss.detach()}

