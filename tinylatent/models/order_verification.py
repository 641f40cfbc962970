"""Order verification on Moving MNIST (family 8 of MISSION.md; tl.data.moving_mnist).

`OrderVerification` (Misra, Zitnick & Hebert 2016, "Shuffle and learn"): from five
frames a < b < c < d < e of a high-motion window, the tuple (b, c, d) is
in order (label 1) and (b, a, d) or (b, e, d) are not (label 0); a siamese frame encoder
and a classifier on the three concatenated codes tell them apart (Sec. 3.1-3.2). Windows
are drawn among those whose motion (mean absolute frame difference, the paper's coarse
optical-flow magnitude) is in the top half of the video's. Each tuple is also reversed
with probability 1/2, so the question is "in order or shuffled", not which way time runs
(bouncing digits are time-symmetric).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import nn
from ..autograd import no_grad
from ..distributions import Categorical
from ..tensor import Tensor
from .config import resolve_config
from .pretext import conv_block
from .video_pretext import _videos

__all__ = ["OrderVerificationConfig", "OrderVerification", "order_tuples"]


def order_tuples(videos, generator=None) -> tuple:
    """One tuple of 3 frames per video: (N, 3, C, H, W) and labels (N,) (1 = in order).

    Per video: the 5-frame windows [t, t + 4] whose motion sum_t' mean |x_{t'+1} - x_{t'}|
    is at least the median over the video's windows are the candidates (Misra et al. 2016
    sample high-motion windows); one is drawn uniformly; with a..e its frames, the tuple
    is (b, c, d) (positive, probability 1/2) or (b, a, d) / (b, e, d) (negatives); then it
    is reversed with probability 1/2."""
    from ..data.transforms import as_numpy_generator
    v = videos.array if isinstance(videos, Tensor) else np.asarray(videos)
    n, t = v.shape[:2]
    if t < 5:
        raise ValueError(f"order_tuples: videos need >= 5 frames, got {t}")
    rng = as_numpy_generator(generator)
    xp = videos.xp if isinstance(videos, Tensor) else np
    motion = xp.abs(v[:, 1:] - v[:, :-1]).mean(axis=(2, 3, 4))           # (N, T-1)
    motion = np.asarray(motion.get() if hasattr(motion, "get") else motion)
    windows = np.stack([motion[:, s:s + 4].sum(1) for s in range(t - 4)], 1)  # (N, T-4)
    frames = np.empty((n, 3), dtype=np.int64)
    label = rng.integers(0, 2, n)
    for i in range(n):
        high = np.flatnonzero(windows[i] >= np.median(windows[i]))
        a, b, c, d, e = rng.choice(high) + np.arange(5)
        frames[i] = (b, c, d) if label[i] else (b, a if rng.random() < 0.5 else e, d)
    flip = rng.random(n) < 0.5
    frames[flip] = frames[flip, ::-1]
    tuples = v[np.arange(n)[:, None], frames]                              # (N, 3, C, H, W)
    return Tensor._make(xp.ascontiguousarray(tuples)), Tensor._make(xp.asarray(label))


@dataclass(frozen=True)
class OrderVerificationConfig:
    in_channels: int = 1
    image_size: int = 32
    hidden_channels: tuple = (16, 32, 64)
    hidden_features: int = 128       # per-frame code (the paper's fc7)


class OrderVerification(nn.Module):
    """Siamese conv frame encoder; classifier on the 3 concatenated codes -> 2 logits."""

    def __init__(self, config: OrderVerificationConfig | None = None, **overrides):
        super().__init__()
        cfg = resolve_config(self, OrderVerificationConfig, config, overrides)
        self.config = cfg
        widths = [cfg.in_channels, *cfg.hidden_channels]
        self.frame_encoder = nn.Sequential(
            *[conv_block(a, b) for a, b in zip(widths, widths[1:])],
            nn.AdaptiveAvgPool2d(2), nn.Flatten(),
            nn.Linear(4 * widths[-1], cfg.hidden_features), nn.ReLU())
        self.classifier = nn.Sequential(nn.Linear(3 * cfg.hidden_features, 128), nn.ReLU(),
                                        nn.Linear(128, 2))

    def _check(self, batch, frames: int | None = None) -> Tensor:
        x = _videos(batch)
        c, s = self.config.in_channels, self.config.image_size
        if tuple(x.shape[2:]) != (c, s, s) or (frames and x.shape[1] != frames):
            raise ValueError(f"OrderVerification: expected videos (B, T, {c}, {s}, {s})"
                             f"{' with T = 3' if frames else ''}, got {tuple(x.shape)}")
        return x

    def forward(self, tuples: Tensor) -> Tensor:
        """Logits (B, 2) [shuffled, in order] of frame tuples (B, 3, C, H, W)."""
        x = self._check(tuples, 3)
        codes = self.frame_encoder(x.reshape(-1, *x.shape[2:]))             # (3B, F)
        return self.classifier(codes.reshape(len(x), -1))                   # (B, 3F)

    def loss(self, batch, generator=None) -> tuple:
        tuples, y = order_tuples(self._check(batch), generator)
        logits = self(tuples)
        nll = -Categorical(logits=logits).log_prob(y).mean()
        accuracy = (logits.detach().argmax(-1) == y).float().mean()
        return nll, {"loss": nll.detach(), "accuracy": accuracy}

    @no_grad()
    def accuracy(self, videos: Tensor, generator=0, batch_size: int = 200) -> float:
        tuples, y = order_tuples(self._check(videos), generator)
        hits = sum(int((self(tuples[i:i + batch_size]).argmax(-1) == y[i:i + batch_size])
                       .sum().item()) for i in range(0, len(y), batch_size))
        return hits / len(y)

    def encode(self, x: Tensor) -> Tensor:
        """Per-frame codes of the first frame: (B, hidden_features), frozen."""
        x = self._check(x)
        with no_grad():
            return self.frame_encoder(x[:, 0])
