"""Relative patch position (Doersch, Gupta & Efros 2015, "Unsupervised visual representation
learning by context prediction"; family 8 of MISSION.md).

The image is cut into a 3 x 3 grid of patches with gaps and jitter (the same tiles as the
jigsaw task: tinylatent.models.pretext.jigsaw_tiles), so that the task cannot be solved by
continuing lines or textures across patch borders (Sec. 3: "trivial shortcuts"). Given the
centre patch and one of its 8 neighbours, a network with shared (siamese) patch encoders
predicts where the neighbour lies (Fig. 2-3):

    loss(x) = -1/8 sum_{k=0}^{7} log p(k | f(centre), f(neighbour_k))

All eight neighbours of each image go into the batch (the encoder runs once per patch),
labelled 0..7 in row-major order skipping the centre: 0 1 2 / 3 . 4 / 5 6 7.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import nn, ops
from ..autograd import no_grad
from ..distributions import Categorical
from ..tensor import Tensor
from .config import resolve_config
from .pretext import jigsaw_tiles

__all__ = ["RelativePatchConfig", "RelativePatch", "NEIGHBOURS"]

NEIGHBOURS = (0, 1, 2, 3, 5, 6, 7, 8)   # tile indices of the 8 neighbours of tile 4


@dataclass(frozen=True)
class RelativePatchConfig:
    in_channels: int = 1
    image_size: int = 28
    cell: int = 10                   # the image is padded to 3 * cell pixels
    tile: int = 7                    # patch side (jitter cell - tile - 1 = 2 pixels)
    hidden_channels: tuple = (32, 64)
    hidden_features: int = 128       # per-patch code (the paper's fc6)


class RelativePatch(nn.Module):
    """Shared conv patch encoder f; a classifier on [f(centre), f(neighbour)] -> 8 logits."""

    def __init__(self, config: RelativePatchConfig | None = None, **overrides):
        super().__init__()
        cfg = resolve_config(self, RelativePatchConfig, config, overrides)
        self.config = cfg
        widths = [cfg.in_channels, *cfg.hidden_channels]
        convs = []
        for a, b in zip(widths, widths[1:]):
            convs += [nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU()]
        self.patch_encoder = nn.Sequential(*convs, nn.Flatten(),
                                           nn.Linear(widths[-1] * cfg.tile ** 2,
                                                     cfg.hidden_features), nn.ReLU())
        self.classifier = nn.Sequential(nn.Linear(2 * cfg.hidden_features, 256), nn.ReLU(),
                                        nn.Linear(256, 8))

    def _check(self, batch) -> Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        c, s = self.config.in_channels, self.config.image_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, s, s):
            raise ValueError(f"RelativePatch: expected images (B, {c}, {s}, {s}), got "
                             f"{tuple(x.shape)}")
        return x

    def _codes(self, x: Tensor, generator=None) -> Tensor:
        c = self.config
        tiles = jigsaw_tiles(self._check(x), 3, c.tile, c.cell, generator)  # (B, 9, C, t, t)
        return self.patch_encoder(tiles.reshape(-1, *tiles.shape[2:])).reshape(len(x), 9, -1)

    def forward(self, codes: Tensor) -> Tensor:
        """Logits (B, 8, 8): row k classifies the pair (centre, neighbour k)."""
        b, _, f = codes.shape
        centre = codes[:, 4:5].expand(b, 8, f)
        neighbours = ops.stack([codes[:, i] for i in NEIGHBOURS], 1)       # (B, 8, F)
        return self.classifier(ops.cat([centre, neighbours], -1))            # (B, 8, 2F)->8

    def loss(self, batch, generator=None) -> tuple:
        x = self._check(batch)
        logits = self(self._codes(x, generator))
        y = Tensor._make(logits.xp.tile(logits.xp.arange(8), (len(x), 1)))  # (B, 8)
        nll = -Categorical(logits=logits).log_prob(y).mean()
        accuracy = (logits.detach().argmax(-1) == y).float().mean()
        return nll, {"loss": nll.detach(), "accuracy": accuracy}

    @no_grad()
    def pretext_accuracy(self, x: Tensor, generator=0, batch_size: int = 500) -> float:
        """Fraction of the 8 N (centre, neighbour) pairs whose position is named correctly."""
        hits = 0
        for i in range(0, len(x), batch_size):
            pred = self(self._codes(x[i:i + batch_size], generator)).argmax(-1).numpy_host()
            hits += int((pred == list(range(8))).sum())
        return hits / (8 * len(x))

    def encode(self, x: Tensor) -> Tensor:
        """The 9 patch codes of the image, concatenated: (B, 9 F), frozen (no jitter draw
        from the global generator: a fixed seed)."""
        with no_grad():
            return self._codes(x, generator=0).reshape(len(x), -1)
