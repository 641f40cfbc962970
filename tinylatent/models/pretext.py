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

import functools
import itertools
from dataclasses import dataclass

import numpy as np

from .. import nn
from ..autograd import no_grad
from ..backend import array_module
from ..distributions import Categorical
from ..tensor import Tensor
from .config import resolve_config

__all__ = ["RotationNetConfig", "RotationNet", "rotate_all", "conv_block", "JigsawConfig",
           "Jigsaw", "maximal_hamming_permutations", "jigsaw_tiles", "features_in_batches"]


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


# ------------------------------------------------------------------------------- jigsaw
@functools.lru_cache(maxsize=2)
def _all_permutations(n: int) -> np.ndarray:
    return np.array(list(itertools.permutations(range(n))), dtype=np.int8)   # (n!, n)


def maximal_hamming_permutations(num_permutations: int = 100, num_tiles: int = 9,
                                 generator=None) -> np.ndarray:
    """The permutation set of Noroozi & Favaro 2016, Alg. 1 ("maximal" Hamming distance):
    start from one uniformly random permutation of the tiles, then repeatedly add the
    permutation whose minimum Hamming distance to those already chosen is largest (ties
    broken uniformly at random). Returns (num_permutations, num_tiles) int64; row k says
    which tile goes to each position."""
    from ..data.transforms import as_numpy_generator
    rng = as_numpy_generator(generator)
    every = _all_permutations(num_tiles)
    if not 1 <= num_permutations <= len(every):
        raise ValueError(f"maximal_hamming_permutations: num_permutations must lie in [1, "
                         f"{len(every)}] for {num_tiles} tiles, got {num_permutations}")
    chosen = [int(rng.integers(len(every)))]
    min_dist = (every != every[chosen[0]]).sum(1)          # distance to the chosen set
    for _ in range(num_permutations - 1):
        best = np.flatnonzero(min_dist == min_dist.max())   # min_dist of chosen ones is 0
        pick = int(best[rng.integers(len(best))])
        chosen.append(pick)
        min_dist = np.minimum(min_dist, (every != every[pick]).sum(1))
    return every[chosen].astype(np.int64)


def jigsaw_tiles(x: Tensor, grid: int = 3, tile: int = 7, cell: int = 10,
                 generator=None, normalize: bool = True) -> Tensor:
    """Cut (B, C, H, W) images into grid x grid tiles with gaps and jitter (Noroozi &
    Favaro 2016, Sec. 3.2, against shortcuts through edge continuity): the image is padded
    (zeros, centred) to grid * cell pixels, and from every cell a tile x tile crop at a
    random offset in [0, cell - tile - 1] is taken, so neighbouring crops are always >= 1
    pixel apart. Every tile is then normalised to zero mean and unit std on its own (the
    paper's per-tile normalisation; off with normalize=False).
    Returns (B, grid^2, C, tile, tile), row-major."""
    from ..data.transforms import as_numpy_generator
    a = x.detach().array
    xp = array_module(a)
    b, c, h, w = a.shape
    side = grid * cell
    if h > side or w > side or tile > cell - 1:
        raise ValueError(f"jigsaw_tiles: need images <= {side}x{side} and tile < cell, got "
                         f"{h}x{w}, tile {tile}, cell {cell}")
    canvas = xp.zeros((b, c, side, side), dtype=a.dtype)
    top, left = (side - h) // 2, (side - w) // 2
    canvas[:, :, top:top + h, left:left + w] = a
    offsets = as_numpy_generator(generator).integers(0, cell - tile, (b, grid * grid, 2))
    out = xp.empty((b, grid * grid, c, tile, tile), dtype=a.dtype)
    for k in range(grid * grid):
        r, q = divmod(k, grid)
        for i in range(b):
            y0, x0 = r * cell + int(offsets[i, k, 0]), q * cell + int(offsets[i, k, 1])
            out[i, k] = canvas[i, :, y0:y0 + tile, x0:x0 + tile]
    if not normalize:
        return Tensor._make(out)
    mean = out.mean(axis=(2, 3, 4), keepdims=True)
    std = out.std(axis=(2, 3, 4), keepdims=True)
    return Tensor._make((out - mean) / (std + 1e-3))


@dataclass(frozen=True)
class JigsawConfig:
    in_channels: int = 1
    image_size: int = 28
    grid: int = 3                    # 3 x 3 tiles
    cell: int = 10                   # the image is padded to grid * cell = 30 pixels
    tile: int = 7                    # crop per cell (jitter cell - tile - 1 = 2 pixels)
    hidden_channels: tuple = (32, 64)  # the shared tile encoder's conv widths
    hidden_features: int = 128       # per-tile code (the paper's fc6)
    num_permutations: int = 100
    permutation_seed: int = 0        # the permutation set is a fixed function of this


class Jigsaw(nn.Module):
    """Context-free network (Noroozi & Favaro 2016, Fig. 3): one tile encoder with shared
    weights applied to each of the 9 shuffled tiles, their codes concatenated, and an MLP
    that names the permutation (index into the maximal-Hamming set):

        loss = -log p(k | tiles in the order P_k),   k uniform over the set."""

    def __init__(self, config: JigsawConfig | None = None, **overrides):
        super().__init__()
        cfg = resolve_config(self, JigsawConfig, config, overrides)
        self.config = cfg
        n = cfg.grid ** 2
        self.register_buffer("permutations", Tensor._make(maximal_hamming_permutations(
            cfg.num_permutations, n, generator=cfg.permutation_seed)))
        widths = [cfg.in_channels, *cfg.hidden_channels]
        convs = []
        for a, b in zip(widths, widths[1:]):
            convs += [nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU()]
        self.tile_encoder = nn.Sequential(*convs, nn.Flatten(),
                                          nn.Linear(widths[-1] * cfg.tile ** 2,
                                                    cfg.hidden_features), nn.ReLU())
        self.classifier = nn.Sequential(nn.Linear(n * cfg.hidden_features, 256), nn.ReLU(),
                                        nn.Linear(256, cfg.num_permutations))

    def _check(self, batch) -> Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        c, s = self.config.in_channels, self.config.image_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, s, s):
            raise ValueError(f"Jigsaw: expected images (B, {c}, {s}, {s}), got "
                             f"{tuple(x.shape)}")
        return x

    def shuffle(self, x: Tensor, generator=None) -> tuple:
        """(tiles (B, 9, C, t, t) with position i holding tile P_k[i], k (B,))."""
        from ..data.transforms import as_numpy_generator
        rng = as_numpy_generator(generator)
        tiles = jigsaw_tiles(self._check(x), self.config.grid, self.config.tile,
                             self.config.cell, rng)
        k = rng.integers(0, self.config.num_permutations, len(x))
        order = self.permutations.array[k]                              # (B, 9)
        xp = tiles.xp
        shuffled = tiles.array[xp.arange(len(x))[:, None], xp.asarray(order)]
        return Tensor._make(shuffled), Tensor._make(xp.asarray(k))

    def forward(self, tiles: Tensor) -> Tensor:
        """Permutation logits (B, num_permutations) of tiles (B, 9, C, t, t)."""
        b, n = tiles.shape[:2]
        codes = self.tile_encoder(tiles.reshape(b * n, *tiles.shape[2:]))  # (B*9, F)
        return self.classifier(codes.reshape(b, -1))                        # (B, 9 F)

    def loss(self, batch, generator=None) -> tuple:
        tiles, k = self.shuffle(self._check(batch), generator)
        logits = self(tiles)
        nll = -Categorical(logits=logits).log_prob(k).mean()
        accuracy = (logits.detach().argmax(-1) == k).float().mean()
        return nll, {"loss": nll.detach(), "accuracy": accuracy}

    @no_grad()
    def pretext_accuracy(self, x: Tensor, generator=0, batch_size: int = 500) -> float:
        hits = 0
        for i in range(0, len(x), batch_size):
            tiles, k = self.shuffle(x[i:i + batch_size], generator)
            hits += int((self(tiles).argmax(-1) == k).sum().item())
        return hits / len(x)

    def encode(self, x: Tensor) -> Tensor:
        """The 9 tile codes of the unshuffled image, concatenated: (B, 9 F), frozen."""
        x = self._check(x)
        with no_grad():
            c = self.config
            tiles = jigsaw_tiles(x, c.grid, c.tile, c.cell, generator=0)
            return self.tile_encoder(tiles.reshape(-1, *tiles.shape[2:])).reshape(len(x), -1)
