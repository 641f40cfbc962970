"""Self-supervised pretext tasks for images (family 8 of MISSION.md; seeds 002-004).

A pretext task invents labels from the images themselves; the network that solves it is then
judged by a linear probe on its FROZEN features (tl.eval.linear_probe) against the same
network at random init and against raw pixels, on the same split.

Rotation prediction (Gidaris, Singh & Komodakis 2018, "Unsupervised representation learning
by predicting image rotations"): every image x is rotated by the four angles
g_y(x) = rot(x, 90 y degrees), y in {0, 1, 2, 3}, and a ConvNet F is trained to tell which:

    loss(x) = -1/4 sum_{y=0}^{3} log F_y(g_y(x))                          (eq. 1-3)

averaged over the batch. All four rotations of an image go into the same minibatch (the
paper's Sec. 3.2 finds this better than one random rotation per image). Recognising the
rotation of an object requires knowing what the object is and where its parts are (Sec. 2.2),
so the features of the conv blocks become useful for classification; the paper finds the
middle blocks transfer best (Table 1), which `block_features` lets a test measure.

    model = RotationNet(hidden_channels=(32, 64, 128))
    loss, metrics = model.loss(x)             # x: (B, 1, 28, 28); metrics["accuracy"]
    feats = model.block_features(x)           # [(B, D_1), (B, D_2), (B, D_3)] per conv block
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import nn
from ..autograd import no_grad
from ..backend import array_module
from ..distributions import Categorical
from ..tensor import Tensor
from .config import resolve_config

__all__ = ["RotationNetConfig", "RotationNet", "rotate_all", "conv_block"]


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """conv 3x3 (same padding) -> batch norm -> ReLU -> 2x2 max pool: halves H and W."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out),
                         nn.ReLU(), nn.MaxPool2d(2))


def rotate_all(x: Tensor) -> tuple:
    """The four rotations g_y(x) of every image, y = 0..3 (counter-clockwise, exact).

    x (B, C, H, W) with H == W -> (x_rot (4B, C, H, W), y (4B,) int64): image b rotated by
    90 y degrees sits at row 4 b + y. Inputs carry no gradient (they are data)."""
    if x.ndim != 4 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"rotate_all: expected square images (B, C, H, H), got {tuple(x.shape)}")
    a = x.detach().array
    xp = array_module(a)
    rots = xp.stack([xp.rot90(a, k, axes=(-2, -1)) for k in range(4)], axis=1)  # (B, 4, C, H, W)
    y = xp.tile(xp.arange(4, dtype=xp.int64), len(a))                            # (4B,)
    return Tensor._make(xp.ascontiguousarray(rots.reshape((-1,) + a.shape[1:]))), Tensor._make(y)


@dataclass(frozen=True)
class RotationNetConfig:
    in_channels: int = 1
    image_size: int = 28
    hidden_channels: tuple = (32, 64, 128)   # one conv block each: conv-BN-ReLU-maxpool
    num_rotations: int = 4                   # the paper's best: 0, 90, 180, 270 degrees
    feature_size: int = 3                    # block maps are average-pooled to this, for probes


class RotationNet(nn.Module):
    """Conv encoder (conv blocks) + global-average-pool + linear rotation classifier."""

    def __init__(self, config: RotationNetConfig | None = None, **overrides):
        super().__init__()
        cfg = resolve_config(self, RotationNetConfig, config, overrides)
        if cfg.num_rotations != 4:
            raise ValueError(f"RotationNet: num_rotations must be 4 (multiples of 90 degrees "
                             f"are the exact rotations of a pixel grid), got {cfg.num_rotations}")
        if cfg.image_size < 2 ** len(cfg.hidden_channels):
            raise ValueError(f"RotationNet: image_size {cfg.image_size} is too small for "
                             f"{len(cfg.hidden_channels)} 2x-pooling blocks")
        self.config = cfg
        widths = [cfg.in_channels, *cfg.hidden_channels]
        self.blocks = nn.ModuleList([conv_block(a, b) for a, b in zip(widths, widths[1:])])
        self.pool = nn.AdaptiveAvgPool2d(cfg.feature_size)
        self.head = nn.Linear(widths[-1], cfg.num_rotations)

    def _check(self, x: Tensor) -> Tensor:
        x = x[0] if isinstance(x, (tuple, list)) else x
        c, s = self.config.in_channels, self.config.image_size
        if x.ndim == 2 and x.shape[1] == c * s * s:
            x = x.reshape(len(x), c, s, s)  # flattened images (B, C*H*W) -> (B, C, H, W)
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, s, s):
            raise ValueError(f"RotationNet: expected images (B, {c}, {s}, {s}), got "
                             f"{tuple(x.shape)}")
        return x

    def forward(self, x: Tensor) -> Tensor:
        """Rotation logits (B, 4) of already-rotated images."""
        h = self._check(x)
        for block in self.blocks:
            h = block(h)
        return self.head(h.mean(axis=(-2, -1)))  # global average pool: (B, C_last)

    def loss(self, batch) -> tuple:
        x = self._check(batch)
        x_rot, y = rotate_all(x)
        logits = self(x_rot)
        nll = -Categorical(logits=logits).log_prob(y).mean()
        accuracy = (logits.detach().argmax(-1) == y).float().mean()
        return nll, {"loss": nll.detach(), "accuracy": accuracy}

    def block_features(self, x: Tensor) -> list:
        """The output of every conv block, average-pooled to feature_size^2 cells and
        flattened: [(B, C_k * feature_size^2) for k = 1..K], with no graph (frozen)."""
        h, out = self._check(x), []
        with no_grad():
            for block in self.blocks:
                h = block(h)
                out.append(self.pool(h).reshape(len(h), -1))  # (B, C_k, s, s) -> (B, C_k s^2)
        return out

    def encode(self, x: Tensor) -> Tensor:
        """The last block's features (B, C_K * feature_size^2), frozen."""
        return self.block_features(x)[-1]

    @no_grad()
    def pretext_accuracy(self, x: Tensor, batch_size: int = 500) -> float:
        """Fraction of the 4 N rotated images whose rotation is predicted correctly."""
        self._check(x)
        hits = 0
        for i in range(0, len(x), batch_size):
            x_rot, y = rotate_all(self._check(x[i:i + batch_size]))
            hits += int((self(x_rot).argmax(-1) == y).sum().item())
        return hits / (4 * len(x))


def features_in_batches(fn, x: Tensor, batch_size: int = 500) -> list:
    """Run fn (x -> list of (B, D) Tensors) over x in chunks; returns NumPy arrays."""
    parts = [[f.numpy_host() for f in fn(x[i:i + batch_size])]
             for i in range(0, len(x), batch_size)]
    return [np.concatenate(cols) for cols in zip(*parts)]
