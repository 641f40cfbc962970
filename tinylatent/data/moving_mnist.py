"""Moving MNIST (Srivastava, Mansimov & Salakhutdinov 2015, Sec. 3): digits bouncing in 64x64.

Each sequence places `num_digits` MNIST digits (28x28) at uniform positions in a size x size
canvas and moves each with its own velocity (uniform direction, speed ~ U(speed)); a digit
that reaches an edge bounces off it, and overlapping digits combine by the pixel-wise max,
as in the paper's generator. Everything is drawn from `generator`, so a seed fixes the videos.

Variants for the arrow-of-time task (Wei et al. 2018, "Learning and using the arrow of time"):
the plain bounce is time-symmetric (a reversed video is an equally likely video), so the
direction of time cannot be told from it. Two variants break the symmetry:
- "gravity": a constant downward acceleration and inelastic bounces off the floor (each
  bounce keeps `restitution` of the vertical speed). Reversed, digits would gain energy at
  every bounce: detectable.
- "fading": digit intensity decays as fade**t. Reversed, digits brighten: detectable.
With `colors`, every digit gets its own random hue (RGB video), and `ids` labels each pixel
with the digit that owns it (0 = background, k = digit k, 1-based) for tracking by
colorization (Vondrick et al. 2018).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .mnist import load_mnist
from .transforms import as_numpy_generator, hsv_to_rgb

__all__ = ["MovingMNISTVideos", "moving_mnist", "VARIANTS"]

VARIANTS = ("bounce", "gravity", "fading")


class MovingMNISTVideos(NamedTuple):
    videos: np.ndarray   # (N, T, C, H, W) float32 in [0, 1]; C = 1, or 3 with colors
    labels: np.ndarray   # (N, num_digits) int64: the class of each digit
    ids: np.ndarray      # (N, T, H, W) uint8: 0 background, k = digit k (1-based)
    colors: np.ndarray   # (N, num_digits, 3) float32 RGB of each digit (ones without colors)


def _trajectories(rng, n: int, num_frames: int, limit: float, speed: tuple, variant: str,
                  gravity: float, restitution: float) -> np.ndarray:
    """(n, T, 2) top-left corners (y, x) in [0, limit] of one digit in n sequences."""
    pos = rng.uniform(0, limit, size=(n, 2))
    theta = rng.uniform(0, 2 * np.pi, size=n)
    v = rng.uniform(*speed, size=n)[:, None] * np.stack([np.sin(theta), np.cos(theta)], 1)
    out = np.empty((n, num_frames, 2))
    for t in range(num_frames):
        out[:, t] = pos
        if variant == "gravity":
            v[:, 0] += gravity                      # y grows downwards: gravity pulls down
        pos = pos + v
        # reflect off the walls: position mirrored back inside, velocity component flipped
        low, high = pos < 0, pos > limit
        pos = np.where(low, -pos, np.where(high, 2 * limit - pos, pos))
        v = np.where(low | high, -v, v)
        if variant == "gravity":
            floor = high[:, 0]
            v[floor, 0] *= restitution              # inelastic floor: energy is lost
        pos = pos.clip(0, limit)
    return out


def moving_mnist(num_sequences: int, num_frames: int = 20, num_digits: int = 2,
                 size: int = 64, variant: str = "bounce", colors: bool = False,
                 digits: tuple | None = None, speed: tuple = (2.0, 5.0),
                 gravity: float = 0.6, restitution: float = 0.7, fade: float = 0.9,
                 label_threshold: float = 0.3, generator=None) -> MovingMNISTVideos:
    """Generate `num_sequences` videos; see the module docstring.

    digits: (images (M, 28, 28) uint8 or [0, 1], labels (M,)) to draw digits from; default
    the MNIST training digits from `load_mnist` (files, download or the embedded subset).
    A pixel belongs to the digit whose (faded) intensity there is largest and above
    `label_threshold`.
    """
    if variant not in VARIANTS:
        raise ValueError(f"moving_mnist: variant must be one of {VARIANTS}, got {variant!r}")
    if num_sequences < 1 or num_frames < 1 or num_digits < 1:
        raise ValueError(f"moving_mnist: num_sequences, num_frames and num_digits must be "
                         f">= 1, got {num_sequences}, {num_frames}, {num_digits}")
    images, classes = digits if digits is not None else load_mnist("mnist", "train")
    images = np.asarray(images)
    images = images.astype(np.float32) / (255.0 if images.dtype == np.uint8 else 1.0)
    d = images.shape[-1]
    if images.ndim != 3 or images.shape[1] != d or d > size:
        raise ValueError(f"moving_mnist: digits must be square images (M, h, h) with "
                         f"h <= size={size}, got {images.shape}")
    rng = as_numpy_generator(generator)
    limit = size - d
    picks = rng.integers(0, len(images), size=(num_sequences, num_digits))
    paths = np.stack([_trajectories(rng, num_sequences, num_frames, limit, speed, variant,
                                    gravity, restitution)
                      for _ in range(num_digits)], axis=1)        # (N, D, T, 2)
    corners = np.rint(paths).astype(np.int64)
    if colors:
        hues = rng.uniform(0, 1, size=(num_sequences, num_digits))
        hsv = np.stack([hues, np.full_like(hues, 0.9), np.ones_like(hues)], axis=-1)
        rgb = hsv_to_rgb(hsv[..., None, None])                     # (N, D, 3, 1, 1)
        digit_colors = rgb.reshape(num_sequences, num_digits, 3).astype(np.float32)
    else:
        digit_colors = np.ones((num_sequences, num_digits, 3), dtype=np.float32)
    brightness = fade ** np.arange(num_frames) if variant == "fading" else np.ones(num_frames)

    # per-digit canvases: (N, D, T, size, size) intensity of digit k alone
    layers = np.zeros((num_sequences, num_digits, num_frames, size, size), dtype=np.float32)
    for n in range(num_sequences):
        for k in range(num_digits):
            glyph = images[picks[n, k]]
            for t in range(num_frames):
                y, x = corners[n, k, t]
                layers[n, k, t, y:y + d, x:x + d] = glyph * brightness[t]
    owner = layers.argmax(axis=1)                                   # (N, T, H, W)
    strongest = layers.max(axis=1)
    ids = np.where(strongest > label_threshold * brightness[None, :, None, None],
                   owner + 1, 0).astype(np.uint8)
    if colors:
        # each digit's intensity times its colour; overlaps take the channel-wise max
        videos = (layers[:, :, :, None] *
                  digit_colors[:, :, None, :, None, None]).max(axis=1)   # (N, T, 3, H, W)
    else:
        videos = strongest[:, :, None]                              # (N, T, 1, H, W)
    return MovingMNISTVideos(videos.astype(np.float32),
                             np.asarray(classes)[picks].astype(np.int64), ids, digit_colors)
