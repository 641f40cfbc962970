"""Tracking emerges by colorizing videos (Vondrick, Shrivastava, Fathi, Guadarrama & Murphy
2018; family 8 of MISSION.md), on coloured Moving MNIST (tl.data.moving_mnist, colors=True).

A network f sees gray frames (the L of CIE Lab) and embeds every cell of a coarse grid
(stride 2^K) into a vector f_i. To colour a target frame it may only COPY colours from a
reference frame, through softmax attention over the embeddings (Sec. 3, eq. 1-2):

    A_ij = exp(f_i . f_j / T) / sum_k exp(f_k . f_j / T),     y_j = sum_i A_ij c_i

where i runs over the reference cells, j is a target cell and c_i the reference colour,
quantised into K clusters of the ab plane by k-means (the paper's 16) and one-hot. The loss is
the cross-entropy of the true colour class c_j of every target cell under y_j:

    loss = - mean_j log y_j[c_j]

Copying colour well requires pointing at the same object in the other frame, so the
attention becomes a tracker: at test time the one-hot colours are replaced by any labels
of the reference frame (here: which digit owns each cell) and propagated the same way
(`propagate`). Every clip uses its first frame as the reference for all later frames.

    model = TrackingByColorization(hidden_channels=(16, 32), latent_features=32)
    model.fit_colors(videos)                  # k-means of the training frames' ab
    loss, metrics = model.loss(videos)        # videos (B, T, 3, H, W) sRGB in [0, 1]
    labels = model.propagate(videos, ids0)    # (B, T, H/s, W/s) from frame-0 labels
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import nn, ops
from ..autograd import no_grad
from ..tensor import Tensor
from .colorization import lab_to_rgb, rgb_to_lab
from .config import resolve_config
from .pretext import conv_block

__all__ = ["attention_copy", "downsample_labels", "TrackingConfig", "TrackingByColorization",
           "label_propagation_accuracy", "nearest_pixel_accuracy"]


def attention_copy(f_ref: Tensor, f_tgt: Tensor, values: Tensor,
                   temperature: float = 1.0) -> Tensor:
    """Eq. 1-2: f_ref (B, D, N), f_tgt (B, D, M), values (B, K, N) of the reference cells
    -> y (B, K, M), y_j = sum_i A_ij values_i with A_ij = softmax_i(f_i . f_j / T)."""
    if f_ref.ndim != 3 or f_ref.shape[:2] != f_tgt.shape[:2] or \
            values.shape[::2] != f_ref.shape[::2]:
        raise ValueError(f"attention_copy: expected f_ref (B, D, N), f_tgt (B, D, M), values "
                         f"(B, K, N), got {tuple(f_ref.shape)}, {tuple(f_tgt.shape)}, "
                         f"{tuple(values.shape)}")
    logits = ops.einsum("bdi,bdj->bij", f_ref, f_tgt) / temperature     # (B, N, M)
    return ops.einsum("bki,bij->bkj", values, ops.softmax(logits, 1))


def downsample_labels(ids, factor: int, num_labels: int, min_fraction: float = 0.25):
    """Per-pixel labels (..., H, W) (0 = background, 1..num_labels-1 objects) -> labels of
    factor x factor cells (..., H/f, W/f): the object owning most of the cell's pixels if it
    owns at least min_fraction of them, else background. NumPy in and out."""
    ids = np.asarray(ids)
    *lead, h, w = ids.shape
    if h % factor or w % factor:
        raise ValueError(f"downsample_labels: {h}x{w} is not divisible by factor {factor}")
    blocks = ids.reshape(*lead, h // factor, factor, w // factor, factor)
    counts = np.stack([(blocks == k).sum((-3, -1)) for k in range(1, num_labels)], -1)
    best = counts.argmax(-1)                                             # (..., h/f, w/f)
    enough = counts.max(-1) >= min_fraction * factor * factor
    return np.where(enough, best + 1, 0).astype(np.int64)


def nearest_pixel_accuracy(ids, stride: int) -> np.ndarray:
    """The baseline of `propagation_accuracy`: every cell keeps its frame-0 label (the
    same position), (T - 1,)."""
    ids = np.asarray(ids)
    truth = downsample_labels(ids, stride, int(ids.max()) + 1)
    return label_propagation_accuracy(np.broadcast_to(truth[:, :1], truth.shape), truth)


def label_propagation_accuracy(pred, truth) -> np.ndarray:
    """Per frame t (from 1) the fraction of foreground cells (truth > 0) labelled right:
    pred, truth (B, T, h, w) -> (T - 1,)."""
    pred, truth = np.asarray(pred)[:, 1:], np.asarray(truth)[:, 1:]
    fg = truth > 0
    return ((pred == truth) & fg).sum((0, 2, 3)) / np.maximum(fg.sum((0, 2, 3)), 1)


@dataclass(frozen=True)
class TrackingConfig:
    image_size: int = 64
    hidden_channels: tuple = (16, 32)  # conv blocks on L, each halving H, W: stride 2^K
    latent_features: int = 32          # embedding per cell, f_i
    num_colors: int = 16               # k-means clusters of ab (the paper's 16)
    temperature: float = 1.0           # eq. 1 (the paper's T = 1 in training)


class TrackingByColorization(nn.Module):
    """Conv blocks -> 3x3 conv -> ReLU -> 1x1 conv to latent_features per cell."""

    def __init__(self, config: TrackingConfig | None = None, **overrides):
        super().__init__()
        cfg = resolve_config(self, TrackingConfig, config, overrides)
        self.stride = 2 ** len(cfg.hidden_channels)
        if not cfg.hidden_channels or cfg.image_size % self.stride:
            raise ValueError(f"TrackingByColorization: image_size {cfg.image_size} must be "
                             f"divisible by 2^{len(cfg.hidden_channels)}")
        self.config = cfg
        widths = [1, *cfg.hidden_channels]
        self.blocks = nn.Sequential(*[conv_block(a, b) for a, b in zip(widths, widths[1:])])
        c = widths[-1]
        self.head = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(c, cfg.latent_features, 1))
        # colour clusters until fit_colors: a grid over the ab plane
        g = np.linspace(-60, 60, int(np.ceil(np.sqrt(cfg.num_colors))))
        grid = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
        self.register_buffer("color_centers",
                             Tensor._make(grid[:cfg.num_colors].astype(np.float32)))

    def _videos(self, batch) -> Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        s = self.config.image_size
        if x.ndim != 5 or x.shape[2] != 3 or tuple(x.shape[3:]) != (s, s) or x.shape[1] < 2:
            raise ValueError(f"TrackingByColorization: expected sRGB videos (B, T >= 2, 3, "
                             f"{s}, {s}), got {tuple(x.shape)}")
        return x

    def features(self, videos: Tensor) -> Tensor:
        """Embeddings (B, T, D, h, w) of every cell of every frame, from L only."""
        x = self._videos(videos)
        b, t = x.shape[:2]
        frames = x.detach().array.reshape(b * t, *x.shape[2:])             # (BT, 3, H, W)
        light = Tensor._make(rgb_to_lab(frames)[:, :1] / 50.0 - 1.0)       # (BT, 1, H, W)
        f = self.head(self.blocks(light))                                   # (BT, D, h, w)
        return f.reshape(b, t, *f.shape[1:])

    def color_classes(self, videos: Tensor) -> np.ndarray:
        """Quantised colour (B, T, h, w) of every cell: the mean sRGB over the cell, in ab,
        assigned to the nearest colour cluster."""
        a = self._videos(videos).detach().array
        b, t, _, hh, ww = a.shape
        s = self.stride
        cells = a.reshape(b * t, 3, hh // s, s, ww // s, s).mean((3, 5))    # (BT, 3, h, w)
        ab = rgb_to_lab(cells)[:, 1:].transpose(0, 2, 3, 1)                  # (BT, h, w, 2)
        d2 = ((ab[..., None, :] - self.color_centers.array) ** 2).sum(-1)     # (BT, h, w, K)
        return d2.argmin(-1).reshape(b, t, hh // s, ww // s)

    @no_grad()
    def fit_colors(self, videos, max_cells: int = 20000, seed: int = 0) -> None:
        """K-means (tl.models.KMeans) of the ab of cells of training videos (Sec. 3.1)."""
        from .classical import KMeans
        x = videos if isinstance(videos, Tensor) else Tensor._make(np.asarray(videos))
        a = self._videos(x).detach().array
        b, t, _, hh, ww = a.shape
        s = self.stride
        cells = a.reshape(b * t, 3, hh // s, s, ww // s, s).mean((3, 5))
        ab = rgb_to_lab(cells)[:, 1:].transpose(0, 2, 3, 1).reshape(-1, 2)
        ab = ab[np.random.default_rng(seed).permutation(len(ab))[:max_cells]]
        km = KMeans(self.config.num_colors, n_init=2, seed=seed).fit(Tensor._make(ab))
        self.color_centers.array[...] = km.cluster_centers_.array.astype(np.float32)

    def _copy(self, f: Tensor, values: Tensor) -> Tensor:
        """Frame-0 values (B, K, N) copied into frames 1..T-1: (B, T-1, K, N)."""
        b, t, d = f.shape[:3]
        f = f.reshape(b, t, d, -1)                                          # (B, T, D, N)
        ref = f[:, 0]
        tgt = f[:, 1:].permute(0, 2, 1, 3).reshape(b, d, -1)                # (B, D, (T-1) N)
        y = attention_copy(ref, tgt, values, self.config.temperature)      # (B, K, (T-1) N)
        return y.reshape(b, -1, t - 1, f.shape[-1]).permute(0, 2, 1, 3)

    def loss(self, batch) -> tuple:
        x = self._videos(batch)
        c = self.color_classes(x)                                           # (B, T, h, w)
        b, t = c.shape[:2]
        xp = x.xp
        onehot = xp.eye(self.config.num_colors, dtype=np.float32)[c[:, 0].reshape(b, -1)]
        y = self._copy(self.features(x), Tensor._make(onehot.transpose(0, 2, 1)))  # (B,T-1,K,N)
        target = xp.ascontiguousarray(c[:, 1:].reshape(b, t - 1, 1, -1))    # (B, T-1, 1, N)
        p = ops.take_along_axis(y, target, 2)
        nll = -(p + 1e-8).log().mean()
        accuracy = (y.detach().argmax(2) == Tensor._make(target[:, :, 0])).float().mean()
        return nll, {"loss": nll.detach(), "accuracy": accuracy}

    @no_grad()
    def propagate(self, videos, labels0, num_labels: int | None = None) -> Tensor:
        """Labels (B, h, w) of frame 0's cells (ints) carried to every frame by the learned
        attention: (B, T, h, w), frame 0 as given, later frames argmax_k y_j[k]."""
        x = self._videos(videos)
        lab0 = np.asarray(labels0.numpy_host() if isinstance(labels0, Tensor) else labels0)
        k = int(lab0.max()) + 1 if num_labels is None else num_labels
        b = len(lab0)
        onehot = np.eye(k, dtype=np.float32)[lab0.reshape(b, -1)].transpose(0, 2, 1)
        y = self._copy(self.features(x), Tensor._make(x.xp.asarray(onehot)))   # (B,T-1,K,N)
        pred = y.argmax(2).reshape(b, -1, *lab0.shape[1:]).numpy_host()
        return Tensor._make(np.concatenate([lab0[:, None], pred], 1))

    def propagation_accuracy(self, videos, ids, batch_size: int = 50) -> np.ndarray:
        """Per later frame (T - 1,): the fraction of foreground cells whose digit label,
        propagated from frame 0 (`propagate`), is right. ids (N, T, H, W) per-pixel labels
        (tl.data.moving_mnist's), taken to cells by `downsample_labels`."""
        ids = np.asarray(ids)
        k = int(ids.max()) + 1
        truth = downsample_labels(ids, self.stride, k)
        pred = np.concatenate([self.propagate(videos[i:i + batch_size], truth[i:i + batch_size,
                                                                               0], k).numpy()
                               for i in range(0, len(truth), batch_size)])
        return label_propagation_accuracy(pred, truth)

    @no_grad()
    def reconstruct(self, videos) -> Tensor:
        """Frames 1..T-1 recoloured by copying frame 0's quantised colours (the expected ab
        under y_j, upsampled to pixels) onto their own L; frame 0 as given: (B, T, 3, H, W)."""
        x = self._videos(videos)
        b, t, _, hh, ww = x.shape
        s, xp = self.stride, x.xp
        c0 = self.color_classes(x)[:, 0].reshape(b, -1)
        onehot = xp.eye(self.config.num_colors, dtype=np.float32)[c0].transpose(0, 2, 1)
        y = self._copy(self.features(x), Tensor._make(onehot)).array        # (B, T-1, K, N)
        ab = xp.einsum("btkn,kc->btcn", y, self.color_centers.array)
        ab = ab.reshape(b, t - 1, 2, hh // s, 1, ww // s, 1)
        ab = xp.broadcast_to(ab, (b, t - 1, 2, hh // s, s, ww // s, s)).reshape(
            b, t - 1, 2, hh, ww)                                             # nearest upsampling
        light = rgb_to_lab(x.array[:, 1:])[:, :, :1]
        rgb = lab_to_rgb(xp.concatenate([light, ab], 2)).astype(np.float32)
        return Tensor._make(xp.concatenate([x.array[:, :1], rgb], 1))
