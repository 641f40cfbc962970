"""Colored MNIST: digits in one hue on a background of another, for colorization.

Each digit image is painted with a foreground colour where the stroke is and a background
colour elsewhere, blended by the stroke's intensity a in [0, 1]:

    rgb = a * foreground + (1 - a) * background

Colours come from a palette of `num_colors` hues evenly spaced on the colour wheel (so the
colour of each part is also a class label). The foreground is bright (value 1.0), the
background dark (value 0.35), so the digit stays visible in the grayscale input of a
colorization model (Zhang, Isola & Efros 2016 predict colour from lightness). The two hues
of an image always differ. Colours are drawn once from `generator`: a seed fixes the set.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .mnist import _load
from .transforms import ImageTensorDataset, as_numpy_generator, hsv_to_rgb

__all__ = ["colorize_digits", "palette", "ColoredMNIST"]

# (saturation, value) of the stroke and background colours, chosen so that every stroke
# colour has a higher luma than every background colour (worst pair: a blue stroke, luma
# 0.47, on a yellow background, luma 0.32): the digit shows in the grayscale input
FOREGROUND_SV = (0.6, 1.0)
BACKGROUND_SV = (0.7, 0.35)


def palette(num_colors: int, saturation: float, value: float) -> np.ndarray:
    """(num_colors, 3) RGB colours at hues k / num_colors, k = 0 .. num_colors - 1."""
    hsv = np.stack([np.arange(num_colors) / num_colors, np.full(num_colors, saturation),
                    np.full(num_colors, value)], axis=1)          # (K, 3)
    return hsv_to_rgb(hsv.T[:, None, :])[:, 0].T                   # (3, 1, K) -> (K, 3)


def colorize_digits(images, num_colors: int = 8, generator=None) -> tuple:
    """Colour grayscale digits (N, H, W) in [0, 1] (or uint8 0-255).

    Returns (rgb (N, 3, H, W) float32, foreground (N,) int64, background (N,) int64): the
    palette indices of the stroke and background colours, always different.
    """
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"colorize_digits: expected images (N, H, W), got {images.shape}")
    if num_colors < 2:
        raise ValueError(f"colorize_digits: need num_colors >= 2, got {num_colors}")
    alpha = images.astype(np.float32) / (255.0 if images.dtype == np.uint8 else 1.0)
    rng = as_numpy_generator(generator)
    fg = rng.integers(0, num_colors, size=len(images))
    # a different hue for the background: shift by 1 .. K-1 places round the wheel
    bg = (fg + rng.integers(1, num_colors, size=len(images))) % num_colors
    fg_rgb = palette(num_colors, *FOREGROUND_SV)[fg].astype(np.float32)   # (N, 3)
    bg_rgb = palette(num_colors, *BACKGROUND_SV)[bg].astype(np.float32)
    a = alpha[:, None]                                                   # (N, 1, H, W)
    rgb = a * fg_rgb[:, :, None, None] + (1 - a) * bg_rgb[:, :, None, None]
    return rgb.astype(np.float32), fg.astype(np.int64), bg.astype(np.int64)


class ColoredMNIST(ImageTensorDataset):
    """MNIST digits coloured as above; items (x (3, 28, 28), digit, foreground, background).

    The digits come from `load_mnist` (files, download or the embedded subset; it says which).
    `generator` (default seed 0) fixes the colours, so the dataset is the same on every run.
    """

    def __init__(self, split: str = "train", data_dir=None, download: bool = True,
                 num_colors: int = 8, generator=0, transform: Callable | None = None):
        images, labels, self.source = _load("mnist", split, data_dir, download)
        rgb, fg, bg = colorize_digits(images, num_colors, generator)
        super().__init__(rgb, labels, fg, bg)
        self.split, self.num_colors, self.transform = split, num_colors, transform
